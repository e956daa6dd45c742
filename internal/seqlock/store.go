package seqlock

// StoreRelaxed32 stores v at p in one access (an aligned 32-bit store is
// one everywhere Go runs), with no fence: an announcement whose ordering
// against the caller's later loads comes from the other side's membarrier.
// It is plain Go so that it inlines to one instruction; the compiler keeps
// it before the caller's later loads of shared state, which are atomic
// loads (ordered after every earlier store in its memory order) or calls.
// Uninstrumented: not for race builds, whose detector must see an atomic
// store instead.
//
//go:norace
func StoreRelaxed32(p *uint32, v uint32) { *p = v }
