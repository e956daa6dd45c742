package cow

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/kernel"
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/rounds"
)

// The benchmarks report each figure of ours next to its baseline, measured
// in the same run (this machine is shared and noisy), as a ratio:
//
//	go test -run XXX -bench . -benchtime 5x ./internal/mm/cow

// benchArena returns a populated arena (so that no figure includes the
// kernel's own first-touch fault on our backing) without THP.
func benchArena(b *testing.B, size int64) *folio.Arena {
	b.Helper()
	a, err := folio.NewArena(folio.Config{Size: size, PageSize: 4096, Populate: true, RetainFree: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a
}

// streamClear is the physical limit of a fault: clearing 4 KiB blocks one
// after the other over a buffer far larger than the caches, as the fault
// path faces them. It returns ns per 4 KiB.
func streamClear(buf []byte) float64 {
	start := time.Now()
	for i := 0; i < len(buf); i += 4096 {
		clear(buf[i : i+4096])
	}
	return float64(time.Since(start).Nanoseconds()) / float64(len(buf)/4096)
}

// streamCopy is the limit of a COW fault: copying 4 KiB blocks over buffers
// far larger than the caches. It returns ns per 4 KiB.
func streamCopy(dst, src []byte) float64 {
	start := time.Now()
	for i := 0; i < len(src); i += 4096 {
		copy(dst[i:i+4096], src[i:i+4096])
	}
	return float64(time.Since(start).Nanoseconds()) / float64(len(src)/4096)
}

func touchPages(b *testing.B, s *Space, addr Addr, size int) {
	b.Helper()
	one := []byte{1}
	for off := 0; off < size; off += 4096 {
		if _, err := s.WriteAt(one, int64(addr)+int64(off)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFault: a write fault per folio, reported per 4 KiB page, at each
// order, against streaming memclr of the same bytes (fault ≤ 1.2× memclr is
// the target) and against the kernel's own first-touch fault on a plain
// 4 KiB-page mapping, the three timed one after the other in each round
// (the machine is shared: see internal/rounds). Memory is dirty (reused),
// so the fault zeroes it, as the kernel's clear_page does. Order 0 writes
// the pages in order, so fault-around maps them a 64 KiB block at a time;
// order0/sparse writes one page per 64 KiB, which must fault one page at
// a time (resident memory is the pages touched, or the benchmark fails),
// reported per fault.
//
//	go test -run XXX -bench 'Fault/order0' -benchtime 10x ./internal/mm/cow
func BenchmarkFault(b *testing.B) {
	const size = 256 << 20
	a := benchArena(b, size+8<<20)
	scratch := make([]byte, size)
	streamClear(scratch) // fault the baseline's buffer in before it is timed
	km := kernelMapping(b, size)
	for _, order := range []int{0, 2, 4, 6, 9} {
		b.Run(fmt.Sprint("order", order), func(b *testing.B) {
			s, err := NewSpace(a, Options{Orders: Orders(order)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			addr, _ := s.Map(size, ProtRead|ProtWrite)
			touchPages(b, s, addr, size) // dirty the arena once
			r := rounds.New("memclr", "fault", "kernel")
			for b.Loop() {
				s.Advise(addr, size, DontNeed)
				clr := streamClear(scratch)
				ours := rounds.Time(func() { touchPages(b, s, addr, size) }) / (size / 4096)
				kern := kernelTouch(b, km, km.Drop)
				r.Add(clr, ours, kern)
			}
			r.Report(b, "ns/4KiB")
		})
	}
	b.Run("order0/sparse", func(b *testing.B) {
		const stride = 64 << 10
		s, err := NewSpace(a, Options{Orders: Orders()})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		addr, _ := s.Map(size, ProtRead|ProtWrite)
		touchPages(b, s, addr, size)
		one := []byte{1}
		r := rounds.New("memclr", "fault")
		for b.Loop() {
			s.Advise(addr, size, DontNeed)
			clr := streamClear(scratch)
			ours := rounds.Time(func() {
				for off := 0; off < size; off += stride {
					if _, err := s.WriteAt(one, int64(addr)+int64(off)); err != nil {
						b.Fatal(err)
					}
				}
			}) / (size / stride)
			if st := s.Stats(); st.Resident != size/stride {
				b.Fatalf("sparse writes: %d pages resident, %d touched", st.Resident, size/stride)
			}
			r.Add(clr, ours)
		}
		r.Report(b, "ns/fault")
	})
}

// kernelMapping maps and populates size bytes of plain 4 KiB-page memory
// for the kernel's side of a comparison.
func kernelMapping(b *testing.B, size int) *kernel.Mapping {
	b.Helper()
	m, err := kernel.Map(size, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Unmap() })
	m.Touch()
	return m
}

// kernelTouch prepares m with prep, then times the kernel's faults of a
// write to every page, in ns per 4 KiB.
func kernelTouch(b *testing.B, m *kernel.Mapping, prep func() error) float64 {
	b.Helper()
	if err := prep(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	m.Touch()
	return float64(time.Since(start).Nanoseconds()) / float64(len(m.B)/4096)
}

// BenchmarkCOWFault: a write to each page of a forked space, in order,
// every one a COW copy of 4 KiB (CopyPage; copy-around copies a 64 KiB
// block per fault once the scan is under way; with CopyFolio, the first
// write to a folio copies it whole and the rest need no fault), against
// streaming memmove of 4 KiB blocks timed in the same rounds (COW ≤ 1.3×
// memmove is the target) and against the kernel's COW fault: a write to
// each page of a plain mapping while a fork()ed child holds it.
//
//	go test -run XXX -bench 'COWFault/order0$' -benchtime 10x ./internal/mm/cow
func BenchmarkCOWFault(b *testing.B) {
	const size = 128 << 20
	// The kernel's side first, before the memory of ours exists: a fork
	// write-protects every page of the process, and the first write to
	// each afterwards faults, which would tax whatever is measured next.
	kern := kernelCOW(b, size)
	a := benchArena(b, 3*size)
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	streamCopy(dst, src) // fault the baseline's buffers in before they are timed
	for _, c := range []struct {
		order int
		unit  CopyUnit
	}{{0, CopyPage}, {4, CopyPage}, {9, CopyPage}, {4, CopyFolio}, {9, CopyFolio}} {
		name := fmt.Sprint("order", c.order)
		if c.unit == CopyFolio {
			name += "/folio"
		}
		b.Run(name, func(b *testing.B) {
			s, err := NewSpace(a, Options{Orders: Orders(c.order), CopyUnit: c.unit})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			addr, _ := s.Map(size, ProtRead|ProtWrite)
			touchPages(b, s, addr, size)
			r := rounds.New("memmove", "cow")
			for b.Loop() {
				c, err := s.Fork()
				if err != nil {
					b.Fatal(err)
				}
				mv := streamCopy(dst, src)
				ours := rounds.Time(func() { touchPages(b, s, addr, size) }) / (size / 4096)
				r.Add(mv, ours)
				c.Close()
			}
			if st := s.Stats(); st.WPCopy == 0 {
				b.Fatal("no COW copy happened")
			}
			r.Report(b, "ns/4KiB")
			b.ReportMetric(kern, "kernel-ns/4KiB")
			b.ReportMetric(r.Median(1)/kern, "x-kernel")
		})
	}
}

// kernelCOW returns the kernel's COW fault in ns per 4 KiB page, the best of
// three rounds: a write to each page of a plain 4 KiB-page mapping of size
// bytes while a fork()ed child holds it.
func kernelCOW(b *testing.B, size int) float64 {
	b.Helper()
	m, err := kernel.Map(size, false)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Unmap()
	m.Touch()
	best := 0.0
	for range 3 {
		var d float64
		if err := kernel.ForkHeld(func() { d = kernelTouch(b, m, func() error { return nil }) }); err != nil {
			b.Fatal(err)
		}
		if best == 0 || d < best {
			best = d
		}
	}
	return best
}

// BenchmarkFork: Fork latency with 64 MiB and 1 GiB resident at order 0, 4
// and 9, against the kernel's fork() of this process with the same memory
// resident in a plain 4 KiB-page mapping (measured in the same run).
func BenchmarkFork(b *testing.B) {
	for _, size := range []int{64 << 20, 1 << 30} {
		m, err := kernel.Map(size, false)
		if err != nil {
			b.Skip(err) // no kernel baseline off Linux
		}
		m.Touch()
		var kfork float64
		const kernelRuns = 5
		for range kernelRuns {
			d, err := kernel.Fork()
			if err != nil {
				b.Fatal(err)
			}
			kfork += float64(d.Nanoseconds())
		}
		kfork /= kernelRuns
		m.Unmap()
		for _, order := range []int{0, 4, 9} {
			b.Run(fmt.Sprintf("%dMiB/order%d", size>>20, order), func(b *testing.B) {
				a := benchArena(b, int64(size)+8<<20)
				s, err := NewSpace(a, Options{Orders: Orders(order)})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				addr, _ := s.Map(size, ProtRead|ProtWrite)
				touchPages(b, s, addr, size)
				var ours float64
				for b.Loop() {
					start := time.Now()
					c, err := s.Fork()
					ours += float64(time.Since(start).Nanoseconds())
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					c.Close()
					b.StartTimer()
				}
				n := float64(b.N)
				b.ReportMetric(ours/n/1e3, "us/fork")
				b.ReportMetric(kfork/1e3, "kernel-us/fork")
				b.ReportMetric(kfork/(ours/n), "x-faster-than-kernel")
			})
		}
	}
}

// BenchmarkReadWrite: ReadAt and WriteAt bandwidth at 4 KiB, 64 KiB and
// 1 MiB per call over resident memory, against copy() of a Go slice of the
// same size.
func BenchmarkReadWrite(b *testing.B) {
	const size = 64 << 20
	a := benchArena(b, size+8<<20)
	s, err := NewSpace(a, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	addr, _ := s.Map(size, ProtRead|ProtWrite)
	touchPages(b, s, addr, size)
	heap := make([]byte, size)
	for i := range heap { // resident and private, as the space's memory is
		heap[i] = byte(i)
	}
	for _, n := range []int{4 << 10, 64 << 10, 1 << 20} {
		buf := make([]byte, n)
		for _, op := range []string{"ReadAt", "WriteAt", "copy-read", "copy-write"} {
			b.Run(fmt.Sprintf("%s/%dKiB", op, n>>10), func(b *testing.B) {
				b.SetBytes(int64(n))
				off := 0
				for b.Loop() {
					switch op {
					case "ReadAt":
						s.ReadAt(buf, int64(addr)+int64(off))
					case "WriteAt":
						s.WriteAt(buf, int64(addr)+int64(off))
					case "copy-read":
						copy(buf, heap[off:])
					case "copy-write":
						copy(heap[off:], buf)
					}
					off = (off + n) % size
				}
			})
		}
	}
}

// BenchmarkReadAt8Random: 8-byte reads at random addresses of 64 MiB of
// resident memory, against the same reads of a Go slice.
func BenchmarkReadAt8Random(b *testing.B) {
	const size = 64 << 20
	for _, order := range []int{0, 4, 9} {
		b.Run(fmt.Sprint("order", order), func(b *testing.B) {
			a := benchArena(b, size+8<<20)
			s, err := NewSpace(a, Options{Orders: Orders(order)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			addr, _ := s.Map(size, ProtRead|ProtWrite)
			touchPages(b, s, addr, size)
			rng := rand.New(rand.NewPCG(1, 2))
			var buf [8]byte
			for b.Loop() {
				s.ReadAt(buf[:], int64(addr)+int64(rng.IntN(size/8))*8)
			}
		})
	}
	b.Run("slice", func(b *testing.B) {
		heap := make([]byte, size)
		for i := range heap {
			heap[i] = byte(i)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var buf [8]byte
		for b.Loop() {
			off := rng.IntN(size/8) * 8
			copy(buf[:], heap[off:off+8])
		}
		runtime.KeepAlive(heap)
	})
}
