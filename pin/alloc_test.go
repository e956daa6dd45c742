//go:build !race && !invariants

package pin

// allocFree: in this build a reused Pages takes and releases pages without
// allocating (TestPinAllocations).
const allocFree = true
