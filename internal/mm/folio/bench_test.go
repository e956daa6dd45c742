package folio

import (
	"strconv"
	"testing"
)

// BenchmarkAllocFree measures one allocation and free per order from a
// warm arena (the free lists hold blocks of that order after the first
// round).
func BenchmarkAllocFree(b *testing.B) {
	a := newTestArena(b, Config{Size: 64 << 20, PageSize: 4096, RetainFree: -1})
	for _, order := range []int{0, 2, 4, 6, 9} {
		b.Run("order"+strconv.Itoa(order), func(b *testing.B) {
			for b.Loop() {
				pfn, err := a.AllocFolio(order, 0)
				if err != nil {
					b.Fatal(err)
				}
				a.FolioPut(pfn, 1)
			}
		})
	}
}

func BenchmarkRefcount(b *testing.B) {
	a := newTestArena(b, Config{Size: 2 << 20, PageSize: 4096})
	small, _ := a.AllocFolio(0, 0)
	large, _ := a.AllocFolio(4, 0)
	b.Run("get-put", func(b *testing.B) {
		for b.Loop() {
			a.FolioGet(small, 1)
			a.FolioPut(small, 1)
		}
	})
	b.Run("tryget-put", func(b *testing.B) {
		for b.Loop() {
			h, _ := a.FolioTryGet(large + 7)
			a.FolioPut(h, 1)
		}
	})
	b.Run("trypin-unpin", func(b *testing.B) {
		for b.Loop() {
			h, _ := a.FolioTryPin(large + 7)
			a.FolioUnpin(h, 1)
		}
	})
	b.Run("mapcount-large", func(b *testing.B) {
		for b.Loop() {
			a.FolioAddMapcount(large, 16, 1)
			a.FolioSubMapcount(large, 16, 1)
		}
	})
	b.Run("anon-exclusive-16", func(b *testing.B) {
		for b.Loop() {
			a.SetPageAnonExclusive(large, 16)
			a.ClearPageAnonExclusive(large, 16)
		}
	})
	b.Run("get-put-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a.FolioGet(small, 1)
				a.FolioPut(small, 1)
			}
		})
	})
	a.FolioPut(small, 1)
	a.FolioPut(large, 1)
}
