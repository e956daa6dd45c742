// Command arenademo shows the foundation of anonfolio at work: an arena of
// naturally aligned folios, a software page table that maps them with
// contiguous-PTE blocks and huge entries, and the accounting behind it.
//
//	go run ./examples/arenademo
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/pte"
)

func main() {
	size := flag.Int64("size", 64<<20, "arena size in bytes")
	pageSize := flag.Int("page", 0, "base page size (0: the host's)")
	flag.Parse()
	if err := run(*size, *pageSize); err != nil {
		log.Fatal(err)
	}
}

func run(size int64, pageSize int) error {
	fmt.Println(folio.HostPlatform())
	a, err := folio.NewArena(folio.Config{Size: size, PageSize: pageSize})
	if err != nil {
		return err
	}
	defer a.Close()
	g := a.Geometry()
	fmt.Printf("\narena: %d MiB, %s\n\n", size>>20, g)

	// One folio of each interesting order, zeroed (fresh memory is known
	// zero, so nothing is actually cleared), then written.
	orders := []int{0, g.ContOrder, g.PMDOrder}
	var heads []folio.PFN
	for _, order := range orders {
		pfn, err := a.AllocFolio(order, folio.AllocZero)
		if err != nil {
			return fmt.Errorf("allocating order %d: %w", order, err)
		}
		b := a.PageBytes(pfn, 1<<order)
		for i := range b {
			b[i] = byte(order)
		}
		fmt.Printf("order %2d folio at pfn %#6x: %8d bytes, refcount %d\n", order, pfn, len(b), a.FolioRef(pfn))
		heads = append(heads, pfn)
	}

	// Map the contpte-order folio with PTEs: one set_ptes folds the block.
	t := pte.New(g, a, 1)
	const base = 1 << 30
	d := t.DirAlloc(base)
	l := d.LeafAlloc(d.Index(base))
	l.Lock()
	l.SetPTEs(0, pte.Mk(heads[1], pte.Present|pte.Write|pte.Dirty), g.ContPTEs)
	fmt.Printf("\n%-44s entry 3: %v\n", fmt.Sprintf("SetPTEs of %d pages folds the block:", g.ContPTEs), l.Get(3))
	l.Set(3, pte.Mk(heads[1]+3, pte.Present)) // one page read-only: the block unfolds
	fmt.Printf("%-44s entry 3: %v; entry 4: %v\n", "one page made read-only unfolds it:", l.Get(3), l.Get(4))
	l.Set(3, pte.Mk(heads[1]+3, pte.Present|pte.Write|pte.Dirty))
	folded := l.TryFold(3)
	fmt.Printf("%-44s entry 4: %v\n", fmt.Sprintf("restored, TryFold refolds it (%v):", folded), l.Get(4))
	cleared := l.Clear(0, g.ContPTEs)
	l.Unlock()
	fmt.Printf("%-44s %v\n", "one Clear of the block gathers:", cleared)

	// Map the PMD-order folio with one huge entry, then split it to PTEs.
	d.Lock()
	slot := d.Index(base) + 1
	d.SetHugeLocked(slot, pte.Mk(heads[2], pte.Present|pte.Write|pte.Dirty))
	fmt.Printf("\nhuge entry maps %d MiB: %v\n", g.FolioSize(g.PMDOrder)>>20, d.Huge(slot))
	leaf := d.SplitHugeLocked(slot)
	d.Unlock()
	leaf.Lock()
	n, _ := leaf.Batch(0, leaf.Len(), pte.Dirty|pte.Young)
	fmt.Printf("split into a leaf of %d PTEs in %d folded blocks; one batch covers %d entries\n",
		leaf.Nr(), leaf.Nr()/g.ContPTEs, n)
	leaf.Clear(0, leaf.Len())
	leaf.Unlock()
	dirs, leaves, bytes := t.Stats()
	fmt.Printf("page tables: %d directory, %d leaves, %d KiB\n", dirs, leaves, bytes>>10)

	for _, h := range heads {
		a.FolioPut(h, 1)
	}
	released := a.Scavenge(0)
	st := a.Stats()
	fmt.Printf("\nall freed: %d of %d pages free, %d KiB zeroed, %d KiB returned to the kernel (%s backing)\n",
		st.FreePages, st.TotalPages, st.BytesZeroed>>10, released>>10, st.Backing)
	return a.Check()
}
