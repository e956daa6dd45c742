//go:build anonfolio_debug

package pin

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	mmfolio "github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// TestDebugStaleBytesAfterRelease: in the anonfolio_debug build, memory a
// pin handed out is quarantined when it is freed, so that a write through a
// Bytes slice kept after Release fails at the culprit (a fault on the
// protected page, or the poison check when the page leaves the quarantine,
// in race builds) instead of landing in whoever gets the page next.
func TestDebugStaleBytesAfterRelease(t *testing.T) {
	a, err := folio.NewArena(folio.Config{Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}()
	s, err := cow.NewSpace(a, cow.Options{Orders: cow.Orders()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Map(1<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Pin(s, addr, page, Write)
	if err != nil {
		t.Fatal(err)
	}
	stale := p.Bytes()[0]
	if err := s.Unmap(addr, 1<<20); err != nil { // the pin holds the page alone now
		t.Fatal(err)
	}
	p.Release() // frees it: into the quarantine
	if !poisoned(stale) {
		// The protected variant: the write itself faults.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		if !faults(func() { stale[0] = 1 }) {
			t.Fatal("a write through Bytes after Release did not fault")
		}
		return
	}
	// The poisoned variant (race builds): the write lands, and the page
	// leaving the quarantine names it.
	stale[0] = 1
	var held []mmfolio.PFN
	msg := panics(func() {
		for { // take everything: the quarantine drains
			pfn, err := engine(a).AllocFolio(0, 0)
			if err != nil {
				break
			}
			held = append(held, pfn)
		}
	})
	for _, pfn := range held {
		engine(a).FolioPut(pfn, 1)
	}
	if !strings.Contains(msg, "written after it was released") {
		t.Fatalf("the write after Release went unnoticed (%q)", msg)
	}
}

// poisoned reports whether b reads as the quarantine's poison (so it was
// not protected).
func poisoned(b []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return b[0] == 0x6b && b[len(b)-1] == 0x6b
}

func faults(f func()) (faulted bool) {
	defer func() { faulted = recover() != nil }()
	f()
	return false
}

func panics(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = spacetest.PanicString(r)
		}
	}()
	f()
	return ""
}
