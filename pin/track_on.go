//go:build race || invariants

package pin

import (
	"fmt"
	"sync"

	cow "github.com/anonfolio/anonfolio/internal/mm/cow"
	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// In race and invariants builds (pebble's invariants.Enabled) the live Pages
// are registered, and cow.Check verifies them page by page: every pinned
// page is AnonExclusive, and each folio's pincount and plain references are
// exactly those the live Pages hold.

var live struct {
	mu    sync.Mutex
	pages map[*Pages]struct{}
}

func init() {
	live.pages = map[*Pages]struct{}{}
	cow.RegisterChecker(checkPins)
	cow.RegisterPinnedPages(pinnedPages)
}

// pinnedPages returns the pins the live Pages hold on a's pages.
func pinnedPages(a *folio.Arena) map[folio.PFN]int {
	live.mu.Lock()
	defer live.mu.Unlock()
	out := map[folio.PFN]int{}
	for p := range live.pages {
		if p.a != a || !p.pin {
			continue
		}
		for _, r := range p.runs {
			for k := range r.n {
				out[r.pfn+folio.PFN(k)]++
			}
		}
	}
	return out
}

func track(p *Pages) {
	live.mu.Lock()
	live.pages[p] = struct{}{}
	live.mu.Unlock()
}

func untrack(p *Pages) {
	live.mu.Lock()
	delete(live.pages, p)
	live.mu.Unlock()
}

func checkPins(a *folio.Arena) error {
	live.mu.Lock()
	defer live.mu.Unlock()
	pins, gets := map[folio.PFN]int{}, map[folio.PFN]int{}
	for p := range live.pages {
		if p.a != a {
			continue
		}
		for _, r := range p.runs {
			if r.zero {
				continue
			}
			if h, _, ok := a.PageFolio(r.pfn); !ok || h != r.head {
				return fmt.Errorf("pin: page %#x is held, but its folio %#x was freed or split", uint64(r.pfn), uint64(r.head))
			}
			if !p.pin {
				gets[r.head] += r.n
				continue
			}
			pins[r.head] += r.n
			for k := range r.n {
				if pfn := r.pfn + folio.PFN(k); !a.PageAnonExclusive(pfn) {
					return fmt.Errorf("pin: page %#x is pinned but not AnonExclusive", uint64(pfn))
				}
			}
		}
	}
	var err error
	a.ForEachFolio(func(head folio.PFN, order int) bool {
		ref, mapc, pc := a.FolioRef(head), a.FolioMapcount(head), a.FolioPincount(head)
		switch {
		case pc != pins[head]:
			err = fmt.Errorf("pin: folio %#x has pincount %d, the live pins hold %d", uint64(head), pc, pins[head])
		case ref-mapc-pc != gets[head]:
			err = fmt.Errorf("pin: folio %#x has %d references beyond mappings and pins, the live Gets hold %d",
				uint64(head), ref-mapc-pc, gets[head])
		}
		return err == nil
	})
	return err
}
