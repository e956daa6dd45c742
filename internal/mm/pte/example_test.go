package pte_test

import (
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// The README's quick start: a 64 KiB folio mapped by one folded contpte
// block.
func Example() {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20, PageSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	head, _ := a.AllocFolio(a.Geometry().ContOrder, folio.AllocZero) // 64 KiB folio
	t := pte.New(a.Geometry(), a, 1)                                 // a page table
	d := t.DirAlloc(1 << 30)
	l := d.LeafAlloc(d.Index(1 << 30))
	l.Lock()
	l.SetPTEs(0, pte.Mk(head, pte.Present|pte.Write), a.Geometry().ContPTEs) // one folded block
	p := l.Get(5)
	fmt.Println(p.PFN() == head+5, p.Write(), p.Cont()) // page 5, writable, in a folded block
	l.Clear(0, a.Geometry().ContPTEs)
	l.Unlock()
	a.FolioPut(head, 1)
	// Output: true true true
}
