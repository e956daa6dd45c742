// Package pagecopy copies whole pages for COW faults and fork the way the
// fault path wants them copied: the destination is written around the cache
// where the platform can (non-temporal stores on amd64), except the one
// cache line the faulting write is about to store to.
//
// Why: a COW copy writes a page that is cold in the cache. With ordinary
// stores each destination line is first read from memory (read for
// ownership), a third more memory traffic than the copy needs, and the
// stores queue up behind those reads. Non-temporal stores write whole lines
// without reading them. Either way the fault's next locked instruction
// waits for the stores to reach memory (about 200 ns per 4 KiB on the
// reference machine, which a streaming memmove hides behind its next
// copy); the saving is the traffic: BenchmarkCopy (a copy, a lock and a few
// metadata writes per page) 730 → 600 ns per 4 KiB, cow's BenchmarkCOWFault
// about 1060 → 1010 ns. The line the write lands in is prefetched before
// the copy and copied last with ordinary stores, so the write hits the
// cache.
package pagecopy

// Line is the cache line size the copy works in.
const Line = 64

// Copy copies src into dst (pages of equal length, a multiple of Line) and
// keeps the line holding byte hot of dst in the cache (hot < 0: none). The
// source may be written meanwhile by other goroutines (see cow's copyPage);
// Copy does not care.
func Copy(dst, src []byte, hot int) {
	n := min(len(dst), len(src))
	if n == 0 {
		return
	}
	if !canStream(dst, n) {
		copy(dst, src)
		return
	}
	if hot < 0 || hot >= n {
		stream(dst, src, n, n)
		return
	}
	h := hot &^ (Line - 1)
	stream(dst, src, n, h) // prefetches line h, copies the rest
	copy(dst[h:h+Line], src[h:h+Line])
}
