package cow

import (
	"fmt"
	"testing"
)

// BenchmarkSplitDeferredPass: one pass of the deferred split over N queued
// 64 KiB folios that it cannot split (a Fork shares the leaves that map
// them, so each is retried), after a Remap moved them ("moved") or not
// ("inplace", the baseline of the same run). A moved folio is looked for in
// every leaf of its owners' tables (findFolioMappingsAnywhere) on every
// pass it stays queued: the pass costs N × table size, and it holds the
// owners' map locks, quiesced, while it walks. Reported per folio, so the
// growth with the size shows. On the 2-core reference machine (shared,
// loaded), -benchtime 3x: inplace 2.2, 2.1, 3.2 µs/folio at 8, 32, 128 MiB;
// moved 24, 54, 216 µs/folio, i.e. 3 ms, 28 ms and 443 ms a pass.
//
//	go test -run XXX -bench SplitDeferredPass -benchtime 3x ./internal/mm/cow
func BenchmarkSplitDeferredPass(b *testing.B) {
	for _, size := range []int{8 << 20, 32 << 20, 128 << 20} {
		for _, moved := range []bool{false, true} {
			name := "inplace"
			if moved {
				name = "moved"
			}
			b.Run(fmt.Sprintf("%dMiB/%s", size>>20, name), func(b *testing.B) {
				a := benchArena(b, int64(2*size+16<<20))
				s, err := NewSpace(a, Options{Orders: Orders(4)})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				addr, _ := s.Map(size, ProtRead|ProtWrite)
				touchPages(b, s, addr, size)
				const folioSize = 64 << 10
				for off := 0; off < size; off += folioSize {
					if err := s.Advise(addr+Addr(off+4096), 4096, DontNeed); err != nil {
						b.Fatal(err)
					}
				}
				if moved {
					to, _ := s.Map(size, ProtRead|ProtWrite)
					if err := s.Remap(addr, size, to); err != nil {
						b.Fatal(err)
					}
				}
				c, err := s.Fork() // shares the leaves: no folio can be split
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				n := size / folioSize
				b.ResetTimer()
				for b.Loop() {
					if freed := s.SplitDeferred(); freed != 0 {
						b.Fatalf("the pass freed %d pages", freed)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/folio")
			})
		}
	}
}
