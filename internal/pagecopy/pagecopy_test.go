package pagecopy

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"unsafe"
)

// aligned returns n bytes at a 4096-byte boundary.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))%4096)) % 4096
	return b[off : off+n : off+n]
}

// TestCopy checks every hot line position, no hot line, sizes from one line
// to a large folio, and the unaligned and ragged fallbacks, against copy().
func TestCopy(t *testing.T) {
	for _, n := range []int{64, 128, 4096, 65536, 2 << 20} {
		src := aligned(n)
		for i := range src {
			src[i] = byte(i*7 + i>>8)
		}
		hots := []int{-1, 0, 63, 64, n/2 + 5, n - 1, n}
		if n <= 4096 {
			hots = hots[:1]
			for h := 0; h < n; h += 17 {
				hots = append(hots, h)
			}
		}
		for _, hot := range hots {
			dst := aligned(n)
			Copy(dst, src, hot)
			if !bytes.Equal(dst, src) {
				t.Fatalf("n %d hot %d: the copy differs", n, hot)
			}
		}
	}
	for _, c := range []struct{ off, n int }{{1, 4096}, {8, 4096}, {0, 100}, {16, 4096 - 16}} {
		t.Run(fmt.Sprintf("off%d/n%d", c.off, c.n), func(t *testing.T) {
			src, dst := aligned(c.n+c.off), aligned(c.n+c.off)
			for i := range src {
				src[i] = byte(i)
			}
			Copy(dst[c.off:], src[c.off:], 3)
			if !bytes.Equal(dst[c.off:], src[c.off:]) {
				t.Fatal("the copy differs")
			}
			for i := range c.off {
				if dst[i] != 0 {
					t.Fatalf("byte %d before dst was written", i)
				}
			}
		})
	}
	Copy(nil, nil, 0) // nothing to copy: no panic
}

// BenchmarkCopy compares the page copy with copy() on 4 KiB pages streaming
// over 256 MiB, each followed by a lock and a few metadata writes, as in a
// COW fault (go test -bench . ./internal/pagecopy).
func BenchmarkCopy(b *testing.B) {
	const size = 256 << 20
	src, dst := aligned(size), aligned(size)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)
	var meta [1 << 16]uint64
	var mu sync.Mutex
	for _, c := range []struct {
		name string
		f    func(d, s []byte)
	}{
		{"memmove", func(d, s []byte) { copy(d, s) }},
		{"pagecopy", func(d, s []byte) { Copy(d, s, 100) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := 0
			for b.Loop() {
				o := p % (size / 4096) * 4096
				c.f(dst[o:o+4096], src[o:o+4096])
				mu.Lock()
				for k := range 8 {
					meta[(p*8+k)%len(meta)]++
				}
				dst[o+100] = 1
				mu.Unlock()
				p++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/4KiB")
		})
	}
}
