package cow

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencies is a log-linear histogram of durations in ns: 16 buckets per
// power of two (a 6 % error), so that a writer can record every write
// without allocating.
type latencies struct {
	b [64 * 16]uint64
	n uint64
}

func (h *latencies) add(ns int64) {
	v := uint64(max(ns, 1))
	e := bits.Len64(v) - 1
	sub := uint64(0)
	if e >= 4 {
		sub = v >> (e - 4) & 15
	} else {
		sub = v << (4 - e) & 15
	}
	h.b[e*16+int(sub)]++
	h.n++
}

// quantile returns the q-quantile, as the bucket's lower bound.
func (h *latencies) quantile(q float64) float64 {
	want := uint64(q * float64(h.n))
	var seen uint64
	for i, c := range h.b {
		seen += c
		if seen > want || seen == h.n && c > 0 {
			e, sub := i/16, uint64(i%16)
			return float64(uint64(1)<<e + sub<<e>>4)
		}
	}
	return 0
}

// BenchmarkForkUnderWrites is issue 14's Fork tail: a space of 128 MiB,
// every page written, one goroutine writing 16 bytes at random addresses
// as fast as it can, and a Fork every 10 ms whose child lives 5 ms (a
// snapshot being saved) and is then closed. Reported: the Fork latency's
// median and maximum, and the writer's median, 99th, 99.9th percentile and
// maximum write latency while the Forks run, and its 99.9th percentile
// without them, measured first (nofork-write-p99.9-ns). Order 0 shares
// page-table leaves at Fork; the default orders map 2 MiB folios with huge
// entries, which Fork write-protects and the first write splits.
//
//	go test -run XXX -bench ForkUnderWrites -benchtime 1x ./internal/mm/cow
func BenchmarkForkUnderWrites(b *testing.B) {
	const size = 128 << 20
	for _, c := range []struct {
		name   string
		orders OrderSet
	}{{"order0", Orders()}, {"default", 0}} {
		b.Run(c.name, func(b *testing.B) {
			a := benchArena(b, 3*size+16<<20)
			s, err := NewSpace(a, Options{Orders: c.orders})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			addr, _ := s.Map(size, ProtRead|ProtWrite)
			touchPages(b, s, addr, size)
			for b.Loop() {
				base := writeLoad(b, s, addr, size, 0)
				load := writeLoad(b, s, addr, size, 50)
				b.ReportMetric(load.forkP50/1e3, "fork-p50-us")
				b.ReportMetric(load.forkMax/1e3, "fork-max-us")
				b.ReportMetric(load.w.quantile(0.5), "write-p50-ns")
				b.ReportMetric(load.w.quantile(0.99), "write-p99-ns")
				b.ReportMetric(load.w.quantile(0.999), "write-p99.9-ns")
				b.ReportMetric(load.w.quantile(1), "write-max-ns")
				b.ReportMetric(base.w.quantile(0.999), "nofork-write-p99.9-ns")
			}
		})
	}
}

type loadResult struct {
	w                latencies
	forkP50, forkMax float64
}

// writeLoad runs the writer while forks Forks happen 10 ms apart (or, with
// forks 0, for 200 ms) and returns the latencies.
func writeLoad(b *testing.B, s *Space, addr Addr, size int, forks int) *loadResult {
	b.Helper()
	res := new(loadResult)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 8))
		buf := make([]byte, 16)
		for !stop.Load() {
			off := int64(rng.IntN(size/16)) * 16
			start := time.Now()
			if _, err := s.WriteAt(buf, int64(addr)+off); err != nil {
				b.Error(err)
				return
			}
			res.w.add(time.Since(start).Nanoseconds())
		}
	}()
	var fs []float64
	if forks == 0 {
		time.Sleep(200 * time.Millisecond)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	for range forks {
		<-tick.C
		start := time.Now()
		c, err := s.Fork()
		fs = append(fs, float64(time.Since(start).Nanoseconds()))
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		c.Close()
	}
	tick.Stop()
	stop.Store(true)
	wg.Wait()
	runtime.GC()
	if len(fs) > 0 {
		slices.Sort(fs)
		res.forkP50, res.forkMax = fs[len(fs)/2], fs[len(fs)-1]
	}
	return res
}
