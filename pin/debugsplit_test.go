//go:build anonfolio_debug

package pin

import (
	"runtime/debug"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// TestDebugStaleBytesAfterSplit: the quarantine catches a stale write only
// if the page it lands in was quarantined when it was freed. A page of a
// large folio that a pin handed out is freed by the deferred split once the
// space unmaps it (FolioSplit frees the unmapped pages itself, not through
// the folio free path), and the split also drops the folio's "held" mark
// from the pages that stay. Either way the page goes back to the free
// lists open: a write through a Bytes slice kept after Release lands in
// whoever is given the page next, which the anonfolio_debug build promises
// to catch.
func TestDebugStaleBytesAfterSplit(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{Orders: cow.Orders(4)}) // 64 KiB folios
	addr := e.Map(s, 1<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('q', 16*page))
	p, err := Pin(s, addr+page, page, Write)
	if err != nil {
		t.Fatal(err)
	}
	stale := p.Bytes()[0]
	p.Release()
	if err := s.Advise(addr+page, page, cow.DontNeed); err != nil { // the folio is left partly mapped
		t.Fatal(err)
	}
	if freed := s.SplitDeferred(); freed != 1 {
		t.Fatalf("SplitDeferred freed %d pages, want the one unmapped", freed)
	}
	if st := e.A.Stats(); st.Quarantined == 0 {
		t.Errorf("the page the pin handed out was freed by the split, and nothing is quarantined")
	}
	if poisoned(stale) {
		return // the race build's variant: the write would be reported when the page leaves
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if !faults(func() { stale[0] = 1 }) {
		// Show where it went: the next allocation of a page gets it.
		pfn, err := engine(e.A).AllocFolio(0, 0)
		if err == nil {
			defer engine(e.A).FolioPut(pfn, 1)
		}
		t.Fatalf("a write through Bytes after Release and the split did not fault (the page is free: next allocation %v, %v)",
			pfn, err)
	}
}
