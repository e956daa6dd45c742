package seqlock

// Fence orders the reader's loads before its next load of the generation.
// x86-64 does not reorder loads with other loads, and the loads are calls
// (Copy, Load64) that the compiler keeps in place: nothing to do.
func Fence() {}
