//go:build race

package cow

// raceBuild: the race detector is on. Lockless sections then announce
// themselves with sync/atomic, which it understands, rather than the
// membarrier pairing, which it cannot see (accsections.go).
const raceBuild = true
