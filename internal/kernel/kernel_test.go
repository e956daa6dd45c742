//go:build linux

package kernel

import (
	"syscall"
	"testing"
)

// TestForkCostsMoreWithMoreMemory: the raw fork works (the child exits, the
// parent reaps it) and, once 256 MiB are resident in 4 KiB pages, costs more
// than with nothing mapped; it is the page-table copy we compare against.
func TestForkWorks(t *testing.T) {
	for range 3 {
		if _, err := Fork(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Map(256<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmap()
	m.Touch()
	m.B[12345] = 42
	if _, err := Fork(); err != nil {
		t.Fatal(err)
	}
	if m.B[12345] != 42 {
		t.Fatal("the parent's memory changed across the fork")
	}
}

// TestForkHeldCOW: while ForkHeld's child is alive the parent's writes are
// copy-on-write faults, one per page (counted as minor faults), and once it
// has exited the pages are the parent's alone again.
func TestForkHeldCOW(t *testing.T) {
	const size = 16 << 20
	m, err := Map(size, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmap()
	m.Touch()
	var during int64
	if err := ForkHeld(func() {
		before := minflt(t)
		m.Touch()
		during = minflt(t) - before
	}); err != nil {
		t.Fatal(err)
	}
	if during < size/4096 {
		t.Errorf("%d minor faults while the child held the pages, want at least one per page (%d)", during, size/4096)
	}
	before := minflt(t)
	m.Touch()
	if after := minflt(t) - before; after > 64 {
		t.Errorf("%d minor faults after the child exited, want none (a few for the runtime)", after)
	}
}

func minflt(t *testing.T) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Minflt
}

func BenchmarkKernelFork(b *testing.B) {
	for _, size := range []int{0, 64 << 20, 1 << 30} {
		for _, huge := range []bool{false, true} {
			name := map[bool]string{false: "4KiB", true: "THP"}[huge]
			b.Run(sizeName(size)+"/"+name, func(b *testing.B) {
				if size > 0 {
					m, err := Map(size, huge)
					if err != nil {
						b.Fatal(err)
					}
					defer m.Unmap()
					m.Touch()
				}
				var total float64
				for b.Loop() {
					d, err := Fork()
					if err != nil {
						b.Fatal(err)
					}
					total += float64(d.Nanoseconds())
				}
				b.ReportMetric(total/float64(b.N)/1e6, "ms/fork")
			})
		}
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<30:
		return "1GiB"
	case n >= 1<<20:
		return "64MiB"
	}
	return "empty"
}
