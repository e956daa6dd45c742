package seqlock

// Fence orders the reader's loads before its next load of the generation:
// arm64 may satisfy a later load (the generation's, even a load-acquire)
// before an earlier plain load, so DMB ISHLD.
func Fence()
