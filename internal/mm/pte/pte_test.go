package pte

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// uniformFolios says every page belongs to a naturally aligned folio of one
// order: enough to test the fold rule "the block lies in one folio".
type uniformFolios int

func (o uniformFolios) PageFolio(pfn folio.PFN) (folio.PFN, int, bool) {
	return pfn &^ (folio.PFN(1)<<int(o) - 1), int(o), true
}

func geometry(t testing.TB, pageSize int) folio.Geometry {
	t.Helper()
	g, err := folio.NewGeometry(pageSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// testLeaf returns the leaf that maps address 0 of a fresh table whose
// folios all have order folioOrder.
func testLeaf(t testing.TB, pageSize, folioOrder int) *Leaf {
	tb := New(geometry(t, pageSize), uniformFolios(folioOrder), 1)
	d := tb.DirAlloc(0)
	return d.LeafAlloc(0)
}

func TestEncodingRoundTrip(t *testing.T) {
	for _, pfn := range []folio.PFN{0, 1, 0x12345, 1<<31 - 1, 1<<40 + 3} {
		for _, flags := range []PTE{0, Present, Present | Write | Dirty, Present | Young | Cont, ZeroPTE, flagMask} {
			p := Mk(pfn, flags)
			if p.PFN() != pfn || p.Flags() != flags {
				t.Fatalf("Mk(%#x, %#x) = %v: pfn %#x flags %#x", pfn, flags, p, p.PFN(), p.Flags())
			}
		}
	}
	p := Mk(7, Present)
	if !p.MkWrite().Write() || p.MkWrite().WrProtect().Write() ||
		!p.MkDirty().Dirty() || p.MkDirty().MkClean().Dirty() ||
		!p.MkYoung().Young() || p.MkYoung().MkOld().Young() ||
		!p.mkCont().Cont() || p.mkCont().mkNonCont().Cont() {
		t.Fatal("flag modifiers do not round-trip")
	}
	if p.Advance(5).PFN() != 12 || p.Advance(5).Flags() != Present {
		t.Fatal("Advance changed more than the PFN")
	}
	if !ZeroPTE.Present() || !ZeroPTE.Zero() || ZeroPTE.Write() || !PTE(0).None() {
		t.Fatal("special entries")
	}
	if s := Mk(0x12, Present|Write|Cont).String(); s != "pfn 0x12 P W C" {
		t.Fatalf("String() = %q", s)
	}
	if !SameMapping(Mk(3, Present|Write|Cont|Dirty), Mk(3, Present|Write|Young)) ||
		SameMapping(Mk(3, Present|Write), Mk(3, Present)) || SameMapping(Mk(3, Present), Mk(4, Present)) {
		t.Fatal("SameMapping")
	}
}

func FuzzEncoding(f *testing.F) {
	f.Add(uint64(0), uint16(0))
	f.Add(uint64(1<<40), uint16(Present|Write))
	f.Add(uint64(0xfffffffffffff), uint16(0xfff))
	f.Fuzz(func(t *testing.T, pfn uint64, flags uint16) {
		pfn &= 1<<(64-pfnShift) - 1
		p := Mk(folio.PFN(pfn), PTE(flags))
		if p.PFN() != folio.PFN(pfn) || p.Flags() != PTE(flags)&flagMask {
			t.Fatalf("Mk(%#x, %#x) = %#x", pfn, flags, uint64(p))
		}
		if p.WrProtect().MkWrite() != p|Write || p.MkOld().MkClean().PFN() != p.PFN() {
			t.Fatal("modifiers touched other bits")
		}
	})
}

func TestTableGeometry(t *testing.T) {
	for _, tt := range []struct {
		pageSize           int
		leafSize, dirSize  uint64
		topBits, midBits   uint
		contPTEs, contSize int
	}{
		{4096, 2 << 20, 1 << 30, 8, 9, 16, 64 << 10},
		{16384, 32 << 20, 64 << 30, 0, 11, 128, 2 << 20},
		{65536, 512 << 20, 4 << 40, 0, 5, 32, 2 << 20},
	} {
		tb := New(geometry(t, tt.pageSize), nil, 1)
		if tb.LeafSize() != tt.leafSize || tb.DirSize() != tt.dirSize || tb.topBits != tt.topBits || tb.midBits != tt.midBits {
			t.Errorf("%d-byte pages: leaf %d dir %d top %d mid %d", tt.pageSize, tb.LeafSize(), tb.DirSize(), tb.topBits, tb.midBits)
		}
		if g := tb.Geometry(); g.ContPTEs != tt.contPTEs || g.ContPTEs*g.PageSize != tt.contSize {
			t.Errorf("%d-byte pages: contpte %d entries", tt.pageSize, g.ContPTEs)
		}
		// The top and bottom of the address space both resolve.
		for _, addr := range []uint64{0, 1<<VABits - 1} {
			d := tb.DirAlloc(addr)
			if d == nil || tb.Dir(addr) != d || d.Base() > addr || addr-d.Base() >= tb.DirSize() {
				t.Errorf("%d-byte pages: DirAlloc(%#x) = %v", tt.pageSize, addr, d)
			}
			if d.Addr(d.Index(addr)) != addr&^(tb.LeafSize()-1) {
				t.Errorf("%d-byte pages: slot address of %#x", tt.pageSize, addr)
			}
		}
		if tb.DirAlloc(1<<VABits) != nil || tb.Dir(1<<VABits+5) != nil {
			t.Errorf("%d-byte pages: an address beyond %d bits resolved", tt.pageSize, VABits)
		}
		var seen []uint64
		tb.Walk(0, 1<<VABits, func(d *Dir) bool { seen = append(seen, d.Base()); return true })
		if len(seen) != 2 || seen[0] != 0 || seen[1] != (1<<VABits-1)&^(tb.DirSize()-1) {
			t.Errorf("%d-byte pages: Walk saw %#x", tt.pageSize, seen)
		}
		if dirs, _, _ := tb.Stats(); dirs != 2 {
			t.Errorf("Stats: %d dirs, want 2", dirs)
		}
	}
}

func TestLeafLifecycle(t *testing.T) {
	tb := New(geometry(t, 4096), uniformFolios(0), 1)
	d := tb.DirAlloc(5 << 21)
	i := d.Index(5 << 21)
	l := d.LeafAlloc(i)
	if l == nil || d.LeafAlloc(i) != l || d.Leaf(i) != l || l.Base() != 5<<21 || l.Shared() {
		t.Fatalf("LeafAlloc: %v", l)
	}
	if l.Index(5<<21+3*4096) != 3 || l.Addr(3) != 5<<21+3*4096 || l.Len() != 512 {
		t.Fatal("leaf addressing")
	}
	l.Lock()
	l.Set(3, Mk(9, Present))
	l.Unlock()
	d.Lock()
	if d.FreeLeafLocked(i) {
		t.Fatal("freed a leaf that maps a page")
	}
	d.Unlock()
	l.Lock()
	l.Clear(3, 1)
	if l.Nr() != 0 {
		t.Fatalf("Nr() = %d after clearing the only entry", l.Nr())
	}
	l.Unlock()
	d.Lock()
	if !d.FreeLeafLocked(i) || d.Leaf(i) != nil {
		t.Fatal("did not free an empty leaf")
	}
	d.Unlock()
	l.Lock()
	if !l.Dead() {
		t.Fatal("a detached leaf is not marked dead")
	}
	l.Unlock()
}

// TestLeafSharing: a leaf installed in a second table has two users and
// stays alive and untouched when one of them unlinks it; the accounting
// user is the first.
func TestLeafSharing(t *testing.T) {
	g := geometry(t, 4096)
	parent, child := New(g, uniformFolios(0), 7), New(g, uniformFolios(0), 9)
	pd := parent.DirAlloc(0)
	l := pd.LeafAlloc(0)
	l.Lock()
	l.Set(1, Mk(5, Present|Write))
	l.Set(2, ZeroPTE)
	if l.Pages() != 1 || l.Nr() != 2 {
		t.Fatalf("Pages %d Nr %d, want 1 and 2", l.Pages(), l.Nr())
	}
	l.Unlock()
	if l.Shared() {
		t.Fatal("a fresh leaf is shared")
	}
	cd := child.DirAlloc(0)
	cd.Lock()
	l.Lock()
	cd.InstallLeafLocked(0, l)
	if !l.Shared() || len(l.Users()) != 2 || l.Users()[0] != 7 || cd.Leaf(0) != l {
		t.Fatalf("after install: users %v", l.Users())
	}
	l.Unlock()
	cd.Unlock()
	pd.Lock()
	if pd.FreeLeafLocked(0) {
		t.Fatal("freed a shared leaf")
	}
	l.Lock()
	if !pd.UnlinkLeafLocked(0, l) || pd.Leaf(0) != nil || l.Shared() || l.Users()[0] != 9 {
		t.Fatalf("unlink by the accounting user: users %v", l.Users())
	}
	if l.Dead() || l.GetRaw(1).PFN() != 5 {
		t.Fatal("unlinking touched the leaf")
	}
	l.Unlock()
	pd.Unlock()
	// A copy replaces a shared leaf in one table. The child (9) became the
	// accounting user when the parent unlinked; the parent rejoins second.
	cd.Lock()
	l.Lock()
	pd.Lock()
	pd.InstallLeafLocked(0, l)
	pd.Unlock()
	cp := cd.NewLeaf(0)
	if !cd.ReplaceLeafLocked(0, l, cp) || cd.Leaf(0) != cp || l.Shared() || l.Users()[0] != 7 {
		t.Fatalf("replace: users %v", l.Users())
	}
	l.Unlock()
	cd.Unlock()
	l.SetMaybePinned()
	if !l.MaybePinned() {
		t.Fatal("pin hint")
	}
	l.ClearMaybePinned()
}

func TestSetPTEsFoldsAlignedBlocks(t *testing.T) {
	tests := []struct {
		name string
		// Setting: nr entries from entry i mapping from pfn.
		i, nr int
		pfn   folio.PFN
		// Expected outcome: which blocks (of 16) end up folded.
		folded []int
	}{
		{"one aligned block", 0, 16, 0x100, []int{0}},
		{"two aligned blocks", 16, 32, 0x200, []int{1, 2}},
		{"aligned block at an unaligned pfn", 0, 16, 0x101, nil},
		{"range starting mid-block", 8, 24, 0x108, []int{1}},
		{"range ending mid-block", 0, 24, 0x100, []int{0}},
		{"less than a block", 0, 15, 0x100, nil},
		{"a whole leaf", 0, 512, 0x400, seq(32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLeaf(t, 4096, 9)
			l.Lock()
			defer l.Unlock()
			l.SetPTEs(tt.i, Mk(tt.pfn, Present|Write|Dirty), tt.nr)
			if l.Nr() != tt.nr {
				t.Fatalf("Nr() = %d, want %d", l.Nr(), tt.nr)
			}
			for k := tt.i; k < tt.i+tt.nr; k++ {
				e := l.GetRaw(k)
				if e.PFN() != tt.pfn+folio.PFN(k-tt.i) || !e.Present() || !e.Write() {
					t.Fatalf("entry %d = %v", k, e)
				}
				want := contains(tt.folded, k/16)
				if e.Cont() != want {
					t.Fatalf("entry %d: Cont %v, want %v", k, e.Cont(), want)
				}
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// +checklocksignore: the lock is released by a deferred call after a panic.
func TestSetPTEsOverPresentEntryPanics(t *testing.T) {
	l := testLeaf(t, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.Set(5, Mk(1, Present))
	defer func() {
		if recover() == nil {
			t.Fatal("SetPTEs over a present entry did not panic")
		}
	}()
	l.SetPTEs(0, Mk(0x100, Present), 16)
}

// blockState returns the block's entries' Cont bits: "all", "none" or "mixed".
func blockState(l *Leaf, s int) string {
	c := 0
	for k := s; k < s+l.contPTEs(); k++ {
		if l.GetRaw(k).Cont() {
			c++
		}
	}
	switch c {
	case 0:
		return "none"
	case l.contPTEs():
		return "all"
	}
	return "mixed"
}

func TestSingleSetUnfoldsAndRefolds(t *testing.T) {
	l := testLeaf(t, 4096, 4)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(16, Mk(0x40, Present|Write), 16)
	if blockState(l, 16) != "all" {
		t.Fatal("block not folded by SetPTEs")
	}
	// Make entry 20 read-only: the block must unfold, and its access bits
	// spread to every entry.
	l.entry(23).Or(uint64(Dirty)) // hardware dirtied one page of the block
	l.Set(20, Mk(0x44, Present))
	if blockState(l, 16) != "none" {
		t.Fatalf("a permission change left the block %s", blockState(l, 16))
	}
	for k := 16; k < 32; k++ {
		// Entry 20 holds exactly what was set; the others keep the block's
		// gathered Dirty.
		if e := l.GetRaw(k); e.Dirty() != (k != 20) || e.PFN() != 0x30+folio.PFN(k) || e.Write() != (k != 20) {
			t.Fatalf("after unfold, entry %d = %v", k, e)
		}
	}
	// Restore it: not the last entry, so no fold yet (kernel heuristic)...
	l.Set(20, Mk(0x44, Present|Write|Dirty))
	if blockState(l, 16) != "none" {
		t.Fatal("folded on a middle entry")
	}
	// ...until the last entry of the block is set.
	l.Set(31, Mk(0x4f, Present|Write|Dirty))
	if blockState(l, 16) != "all" {
		t.Fatal("uniform block not folded on its last entry")
	}
	// An explicit TryFold folds at any entry.
	l.Set(18, Mk(0x42, Present))
	l.Set(18, Mk(0x42, Present|Write))
	if blockState(l, 16) != "none" || !l.TryFold(18) || blockState(l, 16) != "all" {
		t.Fatal("TryFold on a uniform block")
	}
	if got := l.Get(18); !got.Dirty() || !got.Cont() {
		t.Fatalf("Get did not gather Dirty over the block: %v", got)
	}
}

func TestFoldRules(t *testing.T) {
	tests := []struct {
		name       string
		folioOrder int
		setup      func(l *Leaf) // fills entries 0-15 one by one (taking the PTL), must not fold
	}{
		{"block spans two folios", 3, func(l *Leaf) { l.Lock(); fill(l, 0x100, Present|Write, -1); l.Unlock() }},
		{"one entry read-only", 9, func(l *Leaf) { l.Lock(); fill(l, 0x100, Present|Write, 7); l.Unlock() }},
		{"pfns not consecutive", 9, func(l *Leaf) {
			l.Lock()
			defer l.Unlock()
			fill(l, 0x100, Present|Write, -1)
			l.Set(15, Mk(0x200, Present|Write))
		}},
		{"pfn not block aligned", 9, func(l *Leaf) { l.Lock(); fill(l, 0x108, Present|Write, -1); l.Unlock() }},
		{"zero page", 9, func(l *Leaf) {
			l.Lock()
			defer l.Unlock()
			for k := range 16 {
				l.Set(k, ZeroPTE)
			}
		}},
		{"a hole", 9, func(l *Leaf) {
			l.Lock()
			defer l.Unlock()
			fill(l, 0x100, Present|Write, -1)
			l.Clear(4, 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLeaf(t, 4096, tt.folioOrder)
			tt.setup(l)
			l.Lock()
			defer l.Unlock()
			if l.TryFold(0) || blockState(l, 0) != "none" {
				t.Fatalf("folded a block that does not qualify: %s", blockState(l, 0))
			}
		})
	}
	// Dirty and Young differences do not prevent a fold.
	l := testLeaf(t, 4096, 4)
	l.Lock()
	defer l.Unlock()
	for k := range 16 {
		f := Present | Write
		if k%3 == 0 {
			f |= Dirty
		}
		if k%5 == 0 {
			f |= Young
		}
		l.Set(k, Mk(0x10+folio.PFN(k), f))
	}
	if blockState(l, 0) != "all" {
		t.Fatal("access bits prevented the fold")
	}
	for k := range 16 {
		if e := l.GetRaw(k); !e.Dirty() || !e.Young() {
			t.Fatalf("fold did not spread the gathered access bits: entry %d = %v", k, e)
		}
	}
}

// fill sets entries 0-15 one by one to pfn+k with flags, except entry
// readOnly (if >= 0) which is set without Write.
//
// +checklocks:l.mu
func fill(l *Leaf, pfn folio.PFN, flags PTE, readOnly int) {
	for k := range 16 {
		f := flags
		if k == readOnly {
			f &^= Write
		}
		l.Set(k, Mk(pfn+folio.PFN(k), f))
	}
}

func TestWrProtectKeepsWholeBlocksFolded(t *testing.T) {
	l := testLeaf(t, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0x200, Present|Write|Dirty), 64)
	// Whole blocks 1 and 2: write-protected, still folded.
	l.WrProtect(16, 32)
	for _, b := range []int{1, 2} {
		if blockState(l, b*16) != "all" {
			t.Fatalf("block %d unfolded by a whole-block write-protect", b)
		}
	}
	for k := 16; k < 48; k++ {
		if l.GetRaw(k).Write() {
			t.Fatalf("entry %d still writable", k)
		}
	}
	// Ragged range [8, 40): blocks 0 and 2 are partly covered and unfold,
	// block 1 stays folded.
	l2 := testLeaf(t, 4096, 9)
	l2.Lock()
	defer l2.Unlock()
	l2.SetPTEs(0, Mk(0x200, Present|Write), 48)
	l2.WrProtect(8, 32)
	if blockState(l2, 0) != "none" || blockState(l2, 16) != "all" || blockState(l2, 32) != "none" {
		t.Fatalf("ragged write-protect: blocks %s %s %s", blockState(l2, 0), blockState(l2, 16), blockState(l2, 32))
	}
	for k := range 48 {
		if want := k < 8 || k >= 40; l2.GetRaw(k).Write() != want {
			t.Fatalf("entry %d writable %v, want %v", k, !want, want)
		}
	}
}

func TestClearGathersAndCounts(t *testing.T) {
	l := testLeaf(t, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0x200, Present|Write), 48)
	l.entry(20).Or(uint64(Dirty))
	l.entry(33).Or(uint64(Young))
	got := l.Clear(16, 16)
	if got.PFN() != 0x210 || !got.Dirty() || got.Young() || !got.Present() {
		t.Fatalf("Clear(16, 16) = %v, want pfn 0x210 dirty", got)
	}
	if blockState(l, 0) != "all" || blockState(l, 32) != "all" || l.Nr() != 32 {
		t.Fatalf("whole-block clear disturbed its neighbours: nr %d", l.Nr())
	}
	// A ragged clear unfolds the partly covered block and keeps the rest.
	got = l.Clear(30, 6)
	if got.PFN() != 0 || l.Nr() != 28 || blockState(l, 32) != "none" {
		t.Fatalf("ragged clear: first %v nr %d block %s", got, l.Nr(), blockState(l, 32))
	}
	for k := 36; k < 48; k++ {
		if e := l.GetRaw(k); e.PFN() != 0x200+folio.PFN(k) || !e.Young() {
			t.Fatalf("survivor %d = %v", k, e)
		}
	}
}

func TestSetAccessFlags(t *testing.T) {
	l := testLeaf(t, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0x200, Present), 16)
	// Access bits only: every entry of the block gets them, no unfold.
	if !l.SetAccessFlags(3, Mk(0x203, Present|Young)) || blockState(l, 0) != "all" {
		t.Fatal("young on a block")
	}
	for k := range 16 {
		if !l.GetRaw(k).Young() {
			t.Fatalf("entry %d not young", k)
		}
	}
	if l.SetAccessFlags(9, Mk(0x209, Present|Young)) {
		t.Fatal("nothing to do reported a change")
	}
	// Dirty on one raw entry must not hide the others' missing Dirty.
	l.entry(4).Or(uint64(Dirty))
	if !l.SetAccessFlags(5, Mk(0x205, Present|Dirty)) {
		t.Fatal("a dirty sibling hid entry 5's missing Dirty (arm64 97c5550b7631)")
	}
	// Making one entry writable unfolds the block.
	if !l.SetAccessFlags(7, Mk(0x207, Present|Write)) || blockState(l, 0) != "none" {
		t.Fatal("write upgrade on a block did not unfold it")
	}
	for k := range 16 {
		if l.GetRaw(k).Write() != (k == 7) {
			t.Fatalf("entry %d writable %v", k, l.GetRaw(k).Write())
		}
	}
	if !l.ClearAccessFlags(0, 16, Young|Dirty) || l.GetRaw(3).Young() || l.GetRaw(5).Dirty() {
		t.Fatal("ClearAccessFlags")
	}
}

func TestBatch(t *testing.T) {
	l := testLeaf(t, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0x200, Present|Write), 40) // blocks 0 and 1 folded, 32-39 not
	l.entry(5).Or(uint64(Dirty))
	l.Set(45, Mk(0x22d, Present|Write)) // 40-44 none, then a lone entry
	tests := []struct {
		name      string
		i, max    int
		ignore    PTE
		n         int
		anyDirty  bool
		anyWrites bool
	}{
		{"across folded and unfolded entries", 0, 512, accessBits, 40, true, true},
		{"bounded by max", 0, 20, accessBits, 20, true, true},
		{"dirty respected", 0, 512, Young, 5, false, true},
		{"from the middle", 10, 512, accessBits, 30, false, true},
		{"single", 45, 512, accessBits, 1, false, true},
	}
	for _, tt := range tests {
		n, any := l.Batch(tt.i, tt.max, tt.ignore)
		if n != tt.n || any.Dirty() != tt.anyDirty || any.Write() != tt.anyWrites {
			t.Errorf("%s: Batch = %d, %v; want %d dirty %v", tt.name, n, any, tt.n, tt.anyDirty)
		}
	}
	// A read-only entry ends the batch unless Write is ignored.
	l.Set(12, Mk(0x20c, Present))
	if n, _ := l.Batch(0, 512, accessBits); n != 12 {
		t.Errorf("batch over a read-only entry: %d, want 12", n)
	}
	if n, any := l.Batch(0, 512, accessBits|Write); n != 40 || !any.Write() {
		t.Errorf("batch ignoring Write: %d", n)
	}
}

func TestCopyPTEsKeepsBlocksFolded(t *testing.T) {
	tb := New(geometry(t, 4096), uniformFolios(9), 1)
	src := tb.DirAlloc(0).LeafAlloc(0)
	child := New(geometry(t, 4096), uniformFolios(9), 2)
	dst := child.DirAlloc(0).LeafAlloc(0)
	src.Lock()
	defer src.Unlock()
	dst.Lock()
	defer dst.Unlock()
	src.SetPTEs(0, Mk(0x200, Present|Write|Dirty|Young), 48)
	src.CopyPTEs(dst, 0, 48, true)
	for k := range 48 {
		s, d := src.GetRaw(k), dst.GetRaw(k)
		if s.Write() || d.Write() || !s.Cont() || !d.Cont() || d.Young() || !d.Dirty() || s.PFN() != d.PFN() {
			t.Fatalf("entry %d: parent %v, child %v", k, s, d)
		}
	}
	if dst.Nr() != 48 {
		t.Fatalf("child maps %d entries", dst.Nr())
	}
	// A copy of [8, 40) without write-protect: each entry keeps its own
	// flags; block 1 (whole in the range, folded) is copied folded, blocks 0
	// and 2 (partly copied) are not folded in the child.
	dst.Clear(0, 48)
	src.SetAccessFlags(8, Mk(0x208, Present|Write)) // unfolds block 0, makes entry 8 writable
	src.CopyPTEs(dst, 8, 32, false)
	for k := range 48 {
		d := dst.GetRaw(k)
		switch {
		case k < 8 || k >= 40:
			if !d.None() {
				t.Fatalf("child entry %d outside the copy: %v", k, d)
			}
		case d.PFN() != 0x200+folio.PFN(k) || d.Write() != (k == 8) || d.Cont() != (k >= 16 && k < 32):
			t.Fatalf("child entry %d = %v", k, d)
		}
	}
	if blockState(src, 32) != "all" {
		t.Fatal("a copy without write-protect unfolded the source")
	}
}

func TestChangeProt(t *testing.T) {
	l := testLeaf(t, 4096, 9)
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0x200, Present|Write|Dirty), 32)
	l.ChangeProt(0, 40, ProtNone, Write) // PROT_NONE: whole blocks stay folded
	for k := range 40 {
		e := l.GetRaw(k)
		if k >= 32 {
			if !e.None() {
				t.Fatalf("ChangeProt mapped entry %d: %v", k, e)
			}
			continue
		}
		if e.Write() || !e.ProtNone() || e.Accessible() || !e.Present() || !e.Cont() || e.PFN() != 0x200+folio.PFN(k) {
			t.Fatalf("entry %d after PROT_NONE: %v", k, e)
		}
	}
	if got := l.GetLockless(5); got.Accessible() || !got.Cont() {
		t.Fatalf("lockless read of a PROT_NONE block: %v", got)
	}
	l.ChangeProt(0, 32, Write, ProtNone) // and back
	for k := range 32 {
		if e := l.GetRaw(k); !e.Write() || e.ProtNone() || !e.Accessible() || !e.Cont() {
			t.Fatalf("entry %d after restoring: %v", k, e)
		}
	}
	l.ChangeProt(4, 8, 0, Write) // ragged: block 0 unfolds
	if blockState(l, 0) != "none" || blockState(l, 16) != "all" || l.GetRaw(3).Write() == false || l.GetRaw(4).Write() {
		t.Fatal("ragged ChangeProt")
	}
}
