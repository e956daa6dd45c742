// Package seqlock holds the memory accesses of a seqlock reader: loads of
// memory that may be freed and reused by someone else while they run,
// whose result the reader discards when the generation it read before them
// has moved when it reads it again after them (read_seqbegin,
// read_seqretry).
//
// Two things make such loads special. They must not be instrumented by the
// race detector: reading a page another goroutine is legitimately writing
// after it was reused is the benign race the generation check is for, so
// Copy is //go:norace and Load64 is assembly. And the loads must complete
// before the generation is read again: Fence orders them (a load-load
// barrier on arm64, DMB ISHLD; x86-64 keeps loads in order, and Copy and
// Load64 are calls, which the compiler does not move loads across).
package seqlock

// Copy copies src to dst for a seqlock reader (the bytes may be garbage; the
// caller validates them afterwards).
//
//go:norace
func Copy(dst, src []byte) int { return copy(dst, src) }
