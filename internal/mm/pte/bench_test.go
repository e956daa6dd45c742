package pte

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// BenchmarkSetBlock compares mapping one contpte block with one SetPTEs call
// (folded as it is set) against 16 single-entry Sets (each unfolding
// nothing, the last one folding the block), each followed by a Clear.
func BenchmarkSetBlock(b *testing.B) {
	l := testLeaf(b, 4096, 9)
	n := l.contPTEs()
	p := Mk(0x200, Present|Write|Dirty)
	b.Run("SetPTEs", func(b *testing.B) {
		l.Lock()
		defer l.Unlock()
		for b.Loop() {
			l.SetPTEs(0, p, n)
			l.Clear(0, n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
	b.Run("Set×16", func(b *testing.B) {
		l.Lock()
		defer l.Unlock()
		for b.Loop() {
			for k := range n {
				l.Set(k, p.Advance(k))
			}
			l.Clear(0, n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
}

func BenchmarkGetLockless(b *testing.B) {
	l := testLeaf(b, 4096, 9)
	l.Lock()
	l.SetPTEs(0, Mk(0x200, Present|Write), 16) // folded
	l.Set(16, Mk(0x300, Present|Write))        // single
	l.Unlock()
	var sink PTE
	b.Run("cont", func(b *testing.B) {
		for b.Loop() {
			sink |= l.GetLockless(5)
		}
	})
	b.Run("single", func(b *testing.B) {
		for b.Loop() {
			sink |= l.GetLockless(16)
		}
	})
	b.Run("huge-slot", func(b *testing.B) {
		tb := New(geometry(b, 4096), nil, 1)
		d := tb.DirAlloc(0)
		d.Lock()
		d.SetHugeLocked(1, Mk(0x400, Present|Write))
		d.Unlock()
		for b.Loop() {
			sink |= tb.Dir(1 << 21).Huge(1)
		}
	})
	_ = sink
}

func BenchmarkBatch(b *testing.B) {
	l := testLeaf(b, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0x400, Present|Write), 512)
	for b.Loop() {
		if n, _ := l.Batch(0, 512, accessBits); n != 512 {
			b.Fatal(n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/entry")
}

func BenchmarkWrProtectLeaf(b *testing.B) {
	l := testLeaf(b, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0x400, Present|Write), 512)
	for b.Loop() {
		l.WrProtect(0, 512)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/entry")
	_ = folio.PFN(0)
}
