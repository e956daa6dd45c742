package cow

import (
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// corruption is a broken state for Check to find: setup builds a healthy
// state (Check passes), corrupt breaks one invariant and returns how to
// undo it, and Check's error must contain want.
type corruption struct {
	name    string
	orders  func(g folio.Geometry) OrderSet
	setup   func(t *testing.T, e *env, s *Space, addr Addr) []*Space // returns every live space
	corrupt func(t *testing.T, e *env, sp []*Space, addr Addr) (undo func())
	want    string
	exact   bool // an invariant only race and invariants builds verify (folio.ExactLedger)
}

// mustLeaf returns the leaf that maps addr in s.
func mustLeaf(t *testing.T, s *Space, addr Addr) *pte.Leaf {
	t.Helper()
	d := s.table.Dir(uint64(addr))
	if d == nil || d.Leaf(d.Index(uint64(addr))) == nil {
		t.Fatalf("no leaf maps %#x", uint64(addr))
	}
	return d.Leaf(d.Index(uint64(addr)))
}

// folioAt returns the page and the folio that addr maps in s.
func folioAt(t *testing.T, s *Space, addr Addr) (pfn, head folio.PFN) {
	t.Helper()
	m, ok := s.Pagemap(addr)
	if !ok || m.Zero {
		t.Fatalf("nothing but the zero page is mapped at %#x", uint64(addr))
	}
	head, _ = s.pageFolio(folio.PFN(m.PFN))
	return folio.PFN(m.PFN), head
}

// pinDirectly pins the page at addr behind the pin package's back: the
// ledger agrees, so the totals balance, and the page is registered as the
// pin package registers its pins in race and invariants builds.
func pinDirectly(t *testing.T, s *Space, addr Addr) (undo func()) {
	pfn, head := folioAt(t, s, addr)
	s.a.FolioPin(head, 1)
	s.a.LedgerAdd(1, 0, 0)
	restore := RegisterPinnedPages(func(*folio.Arena) map[folio.PFN]int { return map[folio.PFN]int{pfn: 1} })
	return func() { restore(); s.a.FolioUnpin(head, 1); s.a.LedgerAdd(-1, 0, 0) }
}

func written(t *testing.T, e *env, s *Space, addr Addr) []*Space {
	write(t, s, addr, fill('w', 64<<10))
	return []*Space{s}
}

func forked(t *testing.T, e *env, s *Space, addr Addr) []*Space {
	write(t, s, addr, fill('w', 64<<10))
	return []*Space{s, e.fork(s)}
}

// TestCheckFindsCorruption breaks each invariant Check verifies, one at a
// time, and requires Check to name it; after the undo Check passes again.
// A Check that misses a broken state proves nothing when it passes.
func TestCheckFindsCorruption(t *testing.T) {
	order0 := func(folio.Geometry) OrderSet { return Orders() }
	order4 := func(folio.Geometry) OrderSet { return Orders(4) }
	pmd := func(g folio.Geometry) OrderSet { return Orders(g.PMDOrder) }
	cases := []corruption{
		{
			name: "a pinned folio in a leaf without the maybe-pinned hint", orders: order0, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				return pinDirectly(t, sp[0], addr)
			},
			want: "without the maybe-pinned hint",
		},
		{
			name: "a pinned folio in a leaf shared after a fork", orders: order0, setup: forked,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				mustLeaf(t, sp[0], addr).SetMaybePinned()
				return pinDirectly(t, sp[0], addr)
			},
			want: "through a leaf shared by spaces",
		},
		{
			name: "a writable entry of a page that is not AnonExclusive", orders: order0, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				pfn, _ := folioAt(t, sp[0], addr)
				e.a.ClearPageAnonExclusive(pfn, 1)
				return func() { e.a.SetPageAnonExclusive(pfn, 1) }
			},
			want: "is not AnonExclusive",
		},
		{
			name: "an AnonExclusive page mapped by two spaces", orders: order0,
			setup: func(t *testing.T, e *env, s *Space, addr Addr) []*Space {
				sp := forked(t, e, s, addr)
				write(t, sp[1], addr+1<<20, []byte("x")) // the child's leaf is its own now, the parent's too
				write(t, sp[0], addr+1<<20, []byte("y"))
				return sp
			},
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				pfn, _ := folioAt(t, sp[0], addr)
				e.a.SetPageAnonExclusive(pfn, 1)
				return func() { e.a.ClearPageAnonExclusive(pfn, 1) }
			},
			want: "AnonExclusive but mapped 2 times",
		},
		{
			name: "a reference nobody holds", orders: order4, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				_, head := folioAt(t, sp[0], addr)
				e.a.FolioGet(head, 1)
				return func() { e.a.FolioPut(head, 1) }
			},
			want: "neither mappings nor pins", exact: true,
		},
		{
			name: "a pin the ledger does not know", orders: order4, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				_, head := folioAt(t, sp[0], addr)
				mustLeaf(t, sp[0], addr).SetMaybePinned()
				e.a.FolioPin(head, 1)
				return func() { e.a.FolioUnpin(head, 1) }
			},
			want: "a leaked or lost pin", exact: true,
		},
		{
			name: "a pin without its reference", orders: order4, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				_, head := folioAt(t, sp[0], addr)
				mustLeaf(t, sp[0], addr).SetMaybePinned()
				e.a.FolioPin(head, 1)
				e.a.FolioPut(head, 1)
				return func() { e.a.FolioGet(head, 1); e.a.FolioUnpin(head, 1) }
			},
			want: "below mapcount",
		},
		{
			name: "a mapcount above the mappings", orders: order4, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				_, head := folioAt(t, sp[0], addr)
				e.a.FolioGet(head, 1)
				e.a.FolioAddMapcount(head, 1, sp[0].mm)
				return func() { e.a.FolioSubMapcount(head, 1, sp[0].mm); e.a.FolioPut(head, 1) }
			},
			want: "mapcount",
		},
		{
			name: "a Resident count off by one", orders: order0, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				sp[0].cnt.resident.Add(1)
				return func() { sp[0].cnt.resident.Add(-1) }
			},
			want: "Resident is",
		},
		{
			name: "a writable zero-page entry", orders: order0,
			setup: func(t *testing.T, e *env, s *Space, addr Addr) []*Space {
				read(t, s, addr, 1)
				return []*Space{s}
			},
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				l := mustLeaf(t, sp[0], addr)
				i := l.Index(uint64(addr))
				l.Lock()
				old := l.GetRaw(i)
				l.Clear(i, 1)
				l.Set(i, old|pte.Write)
				l.Unlock()
				return func() { l.Lock(); l.Clear(i, 1); l.Set(i, old); l.Unlock() }
			},
			want: "zero-page entry",
		},
		{
			name: "a folio marked for the deferred split but not queued", orders: order4, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				_, head := folioAt(t, sp[0], addr)
				e.a.FolioTestSetDeferred(head)
				return func() { e.a.FolioClearDeferred(head) }
			},
			want: "not queued",
		},
		{
			name: "a COW copy recorded in flight", orders: order0, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				_, head := folioAt(t, sp[0], addr)
				sp[0].copies.add(head)
				return func() { sp[0].copies.remove(head) }
			},
			want: "recorded in flight",
		},
		{
			name: "overlapping regions", orders: order0, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				s := sp[0]
				s.mapLock.Lock()
				defer s.mapLock.Unlock()
				saved := s.regions
				s.regions = append([]region{{start: addr, end: addr + 8192, prot: ProtRead}}, saved...)
				return func() { s.mapLock.Lock(); s.regions = saved; s.mapLock.Unlock() }
			},
			want: "overlap",
		},
		{
			name: "an entry outside every region", orders: order0, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				s := sp[0]
				s.mapLock.Lock()
				defer s.mapLock.Unlock()
				saved := s.regions
				s.regions = []region{{start: addr + 1<<20, end: addr + 2<<20, prot: ProtRead | ProtWrite}}
				return func() { s.mapLock.Lock(); s.regions = saved; s.mapLock.Unlock() }
			},
			want: "lies in no region",
		},
		{
			name: "a writable huge entry whose pages are not AnonExclusive", orders: pmd, setup: written,
			corrupt: func(t *testing.T, e *env, sp []*Space, addr Addr) func() {
				pfn, _ := folioAt(t, sp[0], addr)
				e.a.ClearPageAnonExclusive(pfn+3, 1)
				return func() { e.a.SetPageAnonExclusive(pfn+3, 1) }
			},
			want: "writable huge entry",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.exact && !folio.ExactLedger {
				t.Skip("the default build does not count pins and references in the ledger: run with -race or -tags invariants")
			}
			e := newEnv(t, 16<<20)
			s := e.space(c.orders(e.a.Geometry()))
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			sp := c.setup(t, e, s, addr)
			if err := Check(sp...); err != nil {
				t.Fatalf("Check before the corruption: %v", err)
			}
			undo := c.corrupt(t, e, sp, addr)
			err := Check(sp...)
			undo()
			switch {
			case err == nil:
				t.Fatalf("Check passed a state with %s", c.name)
			case !strings.Contains(err.Error(), c.want):
				t.Fatalf("Check found %q, want an error about %q", err, c.want)
			}
			if err := Check(sp...); err != nil {
				t.Fatalf("Check after the undo: %v", err)
			}
		})
	}
}
