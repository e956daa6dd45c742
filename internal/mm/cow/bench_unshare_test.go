package cow

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkLeafUnshare: the first write into a 2 MiB leaf that a Fork
// shared (on-demand fork): the writer takes its own copy of the leaf's 512
// entries, folio batch by folio batch, and then copies the page it writes.
// The parent writes, as a database whose snapshot is being saved does; it
// is the leaf's accounting user, so the accounting moves to the child too.
// Before each Fork every page is written again, so that each entry is
// writable and each page exclusive, as in a space under a write load (the
// unshare write-protects and clears them all). Reported: the median write
// and the 10th and 90th percentiles.
//
//	go test -run XXX -bench LeafUnshare -benchtime 200x ./internal/mm/cow
func BenchmarkLeafUnshare(b *testing.B) {
	for _, order := range []int{0, 4} {
		b.Run(fmt.Sprint("order", order), func(b *testing.B) {
			a := benchArena(b, 16<<20)
			s, err := NewSpace(a, Options{Orders: Orders(order)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			addr, _ := s.Map(2<<20, ProtRead|ProtWrite)
			touchPages(b, s, addr, 2<<20)
			one := []byte{1}
			var ds []float64
			for b.Loop() {
				b.StopTimer()
				c, err := s.Fork()
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				ds = append(ds, timedWrite(b, s, one, addr+4096*7))
				b.StopTimer()
				c.Close()
				touchPages(b, s, addr, 2<<20) // every entry writable and exclusive again: the worst case
				b.StartTimer()
			}
			if st := s.Stats(); st.LeafUnshares == 0 {
				b.Fatal("no leaf was unshared")
			}
			reportSpread(b, ds, 1e3, "us")
		})
	}
}

// reportSpread reports the median of samples (divided by unit) as
// median-<name>, and the 10th and 90th percentiles.
func reportSpread(b *testing.B, samples []float64, unit float64, name string) {
	b.Helper()
	if len(samples) == 0 {
		return
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	at := func(p float64) float64 { return s[int(p*float64(len(s)-1))] / unit }
	b.ReportMetric(at(0.5), "median-"+name)
	b.ReportMetric(at(0.1), "p10-"+name)
	b.ReportMetric(at(0.9), "p90-"+name)
}

// timedWrite writes p at addr and returns how long it took, in ns (a
// function of its own, so that a profile can single it out).
//
//go:noinline
func timedWrite(b *testing.B, s *Space, p []byte, addr Addr) float64 {
	start := time.Now()
	if _, err := s.WriteAt(p, int64(addr)); err != nil {
		b.Fatal(err)
	}
	return float64(time.Since(start).Nanoseconds())
}
