package cow

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCloseForkedChild: Close of a child that shares every leaf with
// its parent (on-demand fork), the end of every snapshot. Dropping a shared
// leaf used to cost O(1) on Close; since the Close of a space that leaves a
// shared leaf write-protects the folios a Get still holds, it visits every
// folio batch of every shared leaf to compare refcount and mapcount, even
// when nothing is held. Against the code before issue 11's fixes (the same
// benchmark built from ef23665), 3 interleaved rounds, -benchtime 20x, on
// the 2-core reference machine under a load average of 7-13:
//
//	order 0: 1.9-3.0 µs/close before, 389-708 µs after (130-250×)
//	order 4: 2.0-4.5 µs/close before,  48-252 µs after
//	order 9: 2.5-5.9 µs/close before, 2.4-3.5 µs after (huge entries: no leaves)
//
//	go test -run XXX -bench CloseForkedChild -benchtime 20x ./internal/mm/cow
func BenchmarkCloseForkedChild(b *testing.B) {
	const size = 64 << 20
	for _, order := range []int{0, 4, 9} {
		b.Run(fmt.Sprintf("%dMiB/order%d", size>>20, order), func(b *testing.B) {
			a := benchArena(b, size+8<<20)
			s, err := NewSpace(a, Options{Orders: Orders(order)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			addr, _ := s.Map(size, ProtRead|ProtWrite)
			touchPages(b, s, addr, size)
			var closing time.Duration
			for b.Loop() {
				b.StopTimer()
				c, err := s.Fork()
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				c.Close()
				closing += time.Since(start)
			}
			b.ReportMetric(float64(closing.Nanoseconds())/float64(b.N)/1e3, "us/close")
		})
	}
}
