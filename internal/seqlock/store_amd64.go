package seqlock

// StoreRelease32 stores v at p in one access, after every earlier load and
// store of this goroutine (a store-release). On x86-64 every store is a
// release, so it is a plain store that inlines to one MOV (sync/atomic's
// Store is an XCHG, a full fence we do not need); the compiler keeps it
// after the caller's earlier accesses, which are atomic loads or calls.
// Uninstrumented: not for race builds.
//
//go:norace
func StoreRelease32(p *uint32, v uint32) { *p = v }
