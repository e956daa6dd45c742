package folio

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

// buddyModel is the reference the allocator is checked against: which pages
// are allocated, and the folios handed out.
type buddyModel struct {
	t       testing.TB
	a       *Arena
	owner   []int32 // per page: index+1 of the live folio that holds it, 0 if free
	folios  []PFN
	orders  []int
	free    int64
	nextTag int32
}

func newBuddyModel(t testing.TB, a *Arena) *buddyModel {
	return &buddyModel{t: t, a: a, owner: make([]int32, a.NrPages()), free: a.NrPages()}
}

// alloc allocates a folio of order and checks it against the model: natural
// alignment, no overlap with a live folio, metadata of a fresh folio.
func (m *buddyModel) alloc(order int) error {
	pfn, err := m.a.AllocFolio(order, 0)
	if err != nil {
		if !errors.Is(err, ErrNoMemory) {
			m.t.Fatalf("AllocFolio(%d): %v", order, err)
		}
		// The model agrees only if no naturally aligned free run exists.
		n := int64(1) << order
		for p := int64(0); p < int64(len(m.owner)); p += n {
			if m.runFree(p, n) {
				m.t.Fatalf("AllocFolio(%d) = ErrNoMemory but pages [%d, %d) are free", order, p, p+n)
			}
		}
		return err
	}
	n := int64(1) << order
	if int64(pfn)%n != 0 {
		m.t.Fatalf("folio %d of order %d is not naturally aligned", pfn, order)
	}
	for i := int64(0); i < n; i++ {
		if o := m.owner[int64(pfn)+i]; o != 0 {
			m.t.Fatalf("folio %d of order %d overlaps live folio %d at page %d", pfn, order, m.folios[o-1], int64(pfn)+i)
		}
	}
	if h, o, ok := m.a.PageFolio(pfn + PFN(n-1)); !ok || h != pfn || o != order {
		m.t.Fatalf("PageFolio(last page of %d) = %d, %d, %v", pfn, h, o, ok)
	}
	if r, mc, pc := m.a.FolioRef(pfn), m.a.FolioMapcount(pfn), m.a.FolioPincount(pfn); r != 1 || mc != 0 || pc != 0 {
		m.t.Fatalf("fresh folio %d: ref %d mapcount %d pincount %d", pfn, r, mc, pc)
	}
	m.folios = append(m.folios, pfn)
	m.orders = append(m.orders, order)
	tag := int32(len(m.folios))
	for i := int64(0); i < n; i++ {
		m.owner[int64(pfn)+i] = tag
	}
	m.free -= n
	return nil
}

func (m *buddyModel) runFree(p, n int64) bool {
	for i := p; i < p+n; i++ {
		if m.owner[i] != 0 {
			return false
		}
	}
	return true
}

// release frees the i-th live folio.
func (m *buddyModel) release(i int) {
	pfn, order := m.folios[i], m.orders[i]
	n := int64(1) << order
	m.a.FolioPut(pfn, 1)
	for j := int64(0); j < n; j++ {
		m.owner[int64(pfn)+j] = 0
	}
	last := len(m.folios) - 1
	if i != last {
		m.folios[i], m.orders[i] = m.folios[last], m.orders[last]
		moved := m.folios[i]
		for j := int64(0); j < int64(1)<<m.orders[i]; j++ {
			m.owner[int64(moved)+j] = int32(i + 1)
		}
	}
	m.folios, m.orders = m.folios[:last], m.orders[:last]
	m.free += n
}

func (m *buddyModel) check() {
	if st := m.a.Stats(); st.FreePages != m.free {
		m.t.Fatalf("FreePages = %d, model says %d", st.FreePages, m.free)
	}
	if err := m.a.Check(); err != nil {
		m.t.Fatal(err)
	}
}

// releaseAll frees everything and checks that the arena is whole again:
// every page free, every block merged back to the largest order.
func (m *buddyModel) releaseAll() {
	for len(m.folios) > 0 {
		m.release(len(m.folios) - 1)
	}
	m.check()
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.scavenging > 0 { // the background scavenger holds a block
		a.scavReturned.Wait()
	}
	blocks := a.free[a.geo.MaxOrder][listResident].nr + a.free[a.geo.MaxOrder][listReleased].nr
	if want := a.nrPages >> a.geo.MaxOrder; blocks != want {
		m.t.Fatalf("after freeing everything: %d max-order blocks, want %d (buddies not merged)", blocks, want)
	}
}

func TestBuddyRandomAgainstModel(t *testing.T) {
	for _, cfg := range []Config{
		{Size: 8 << 20, PageSize: 4096},
		{Size: 4 << 20, PageSize: 4096, MaxOrder: 4},
		{Size: 64 << 20, PageSize: 16384},
		{Size: 512 << 20, PageSize: 65536, RetainFree: -1},
	} {
		t.Run(sizeString(int64(cfg.PageSize)), func(t *testing.T) {
			a := newTestArena(t, cfg)
			m := newBuddyModel(t, a)
			rng := rand.New(rand.NewPCG(1, uint64(cfg.PageSize)))
			steps := 20000
			if testing.Short() {
				steps = 4000
			}
			for step := range steps {
				if len(m.folios) > 0 && rng.IntN(100) < 45 {
					m.release(rng.IntN(len(m.folios)))
				} else {
					// Small orders are common, large ones rare: fragmentation.
					order := min(a.MaxOrder(), int(rng.ExpFloat64()*1.5))
					m.alloc(order)
				}
				if step%1000 == 0 {
					m.check()
				}
			}
			m.check()
			m.releaseAll()
		})
	}
}

func TestBuddyExhaustionAndFragmentation(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096}) // 512 pages
	m := newBuddyModel(t, a)
	for range 512 {
		if err := m.alloc(0); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.alloc(0); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("alloc from a full arena = %v, want ErrNoMemory", err)
	}
	// Free every other page: half the arena is free, yet no order-1 block.
	for pfn := PFN(0); pfn < 512; pfn += 2 {
		for i, f := range m.folios {
			if f == pfn {
				m.release(i)
				break
			}
		}
	}
	m.check()
	if st := a.Stats(); st.FreePages != 256 {
		t.Fatalf("FreePages = %d, want 256", st.FreePages)
	}
	if err := m.alloc(1); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("order-1 alloc with only isolated free pages = %v, want ErrNoMemory", err)
	}
	if st := a.Stats(); st.AllocFail[1] != 1 {
		t.Fatalf("AllocFail[1] = %d, want 1", st.AllocFail[1])
	}
	// Order 0 still works: the fault path's last resort.
	if err := m.alloc(0); err != nil {
		t.Fatalf("order-0 alloc with free pages: %v", err)
	}
	m.check()
	m.releaseAll()
}

func TestKnownZeroIsNotZeroedTwice(t *testing.T) {
	a := newTestArena(t, Config{Size: 4 << 20, PageSize: 4096, RetainFree: -1})
	pfn, err := a.AllocFolio(9, AllocZero)
	if err != nil {
		t.Fatal(err)
	}
	if z := a.Stats().BytesZeroed; z != 0 {
		t.Fatalf("fresh memory was zeroed again: %d bytes", z)
	}
	b := a.PageBytes(pfn, 512)
	if !allZero(b) {
		t.Fatal("fresh folio is not zero")
	}
	b[5*4096+7] = 0xaa // dirty one page
	a.FolioPut(pfn, 1)

	// Allocated pages are dirty once handed out: all 512 are cleared.
	pfn, err = a.AllocFolio(9, AllocZero)
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(a.PageBytes(pfn, 512)) {
		t.Fatal("AllocZero returned non-zero memory")
	}
	if z := a.Stats().BytesZeroed; z != 512*4096 {
		t.Fatalf("BytesZeroed = %d, want %d", z, 512*4096)
	}
	a.PageBytes(pfn, 1)[0] = 1
	a.FolioPut(pfn, 1)

	// Without AllocZero the bytes are left as they are.
	pfn, _ = a.AllocFolio(9, 0)
	if a.PageBytes(pfn, 1)[0] != 1 {
		t.Fatal("AllocFolio without AllocZero cleared memory")
	}
	a.FolioPut(pfn, 1)

	// Returned memory reads zero: not cleared again.
	if n := a.Scavenge(0); n != 512*4096 {
		t.Fatalf("Scavenge(0) released %d bytes, want %d", n, 512*4096)
	}
	before := a.Stats().BytesZeroed
	pfn, _ = a.AllocFolio(9, AllocZero)
	if !allZero(a.PageBytes(pfn, 512)) {
		t.Fatal("released memory does not read zero")
	}
	if z := a.Stats().BytesZeroed; z != before {
		t.Fatalf("released memory was zeroed again: %d bytes", z-before)
	}
	a.FolioPut(pfn, 1)

	// A mix: a dirty order-1 folio merged back into a released block: only
	// its two pages are cleared. The other block is held, so the last
	// allocation must take the merged one.
	a.Scavenge(0)
	other, _ := a.AllocFolio(9, 0)
	small, _ := a.AllocFolio(1, AllocZero) // splits the remaining released block
	a.PageBytes(small, 1)[100] = 3
	a.FolioPut(small, 1)
	before = a.Stats().BytesZeroed
	pfn, _ = a.AllocFolio(9, AllocZero)
	if !allZero(a.PageBytes(pfn, 512)) {
		t.Fatal("mixed block not zero")
	}
	if z := a.Stats().BytesZeroed - before; z != 2*4096 {
		t.Fatalf("zeroed %d bytes of a block with two dirty pages, want %d", z, 2*4096)
	}
	a.FolioPut(pfn, 1)
	a.FolioPut(other, 1)
}

func allZero(b []byte) bool {
	return bytes.Count(b, []byte{0}) == len(b)
}

func TestScavengerReturnsMemoryOverTheWatermark(t *testing.T) {
	const retain = 4 << 20
	a := newTestArena(t, Config{Size: 64 << 20, PageSize: 4096, RetainFree: retain})
	var pfns []PFN
	for {
		pfn, err := a.AllocFolio(9, 0)
		if err != nil {
			break
		}
		a.PageBytes(pfn, 512)[0] = 1 // make it resident
		pfns = append(pfns, pfn)
	}
	if len(pfns) != 32 {
		t.Fatalf("allocated %d blocks of 2 MiB from 64 MiB", len(pfns))
	}
	for _, pfn := range pfns {
		a.FolioPut(pfn, 1)
	}
	// 32 free blocks of 2 MiB, 4 MiB kept: exactly 30 go back.
	waitFor(t, "the scavenger to release 60 MiB", func() bool {
		st := a.Stats()
		return st.BytesReleased == 60<<20 && st.Releases == 30
	})
	st := a.Stats()
	if st.ResidentFree<<12 != retain {
		t.Fatalf("%d bytes of free memory resident, want %d", st.ResidentFree<<12, retain)
	}
	if st.ResidentFree+st.ReleasedFree != st.FreePages || st.FreePages != st.TotalPages {
		t.Fatalf("inconsistent stats %+v", st)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestRetainNeverKeepsMemory(t *testing.T) {
	a := newTestArena(t, Config{Size: 16 << 20, PageSize: 4096, RetainFree: -1})
	pfn, _ := a.AllocFolio(9, 0)
	a.PageBytes(pfn, 1)[0] = 1
	a.FolioPut(pfn, 1)
	a.mu.Lock()
	started := a.scavStarted
	a.mu.Unlock()
	if started || a.Stats().BytesReleased != 0 {
		t.Fatal("an arena with RetainFree < 0 released memory in the background")
	}
}

// FuzzBuddy drives the allocator with an operation sequence: each byte is an
// allocation of order b%8 (b < 160) or the free of live folio b.
func FuzzBuddy(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 200, 201, 4, 5, 6, 7, 255, 0, 0, 0})
	f.Add([]byte{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 170, 171, 172, 0, 0, 1, 1})
	f.Add(bytes.Repeat([]byte{0, 160}, 64))
	f.Add(bytes.Repeat([]byte{3, 2, 1, 0, 250}, 40))
	f.Fuzz(func(t *testing.T, ops []byte) {
		a, err := NewArena(Config{Size: 1 << 20, PageSize: 4096, MaxOrder: 7, RetainFree: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		m := newBuddyModel(t, a)
		for _, b := range ops {
			if b < 160 || len(m.folios) == 0 {
				m.alloc(int(b % 8))
			} else {
				m.release(int(b) % len(m.folios))
			}
		}
		m.check()
		m.releaseAll()
	})
}

// TestCachedPagesAreFreeMemory: order-0 pages freed from many goroutines
// sit in their caches, yet count as free, and a large allocation that needs
// them drains the caches rather than failing.
func TestCachedPagesAreFreeMemory(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096, RetainFree: -1}) // one 2 MiB block
	var pfns []PFN
	for {
		pfn, err := a.AllocFolio(0, 0)
		if err != nil {
			break
		}
		pfns = append(pfns, pfn)
	}
	if len(pfns) != 512 {
		t.Fatalf("allocated %d order-0 pages from 512", len(pfns))
	}
	// Free them from goroutines with their own stacks (their own shards).
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(pfns); i += 8 {
				a.FolioPut(pfns[i], 1)
			}
		}()
	}
	wg.Wait()
	if st := a.Stats(); st.FreePages != 512 || a.pcpPages() == 0 {
		t.Fatalf("FreePages %d with %d cached, want 512 and some cached", st.FreePages, a.pcpPages())
	}
	pfn, err := a.AllocFolio(9, AllocZero)
	if err != nil {
		t.Fatalf("a 2 MiB allocation with every page free but cached: %v", err)
	}
	if a.pcpPages() != 0 {
		t.Fatalf("%d pages still cached after the drain", a.pcpPages())
	}
	a.FolioPut(pfn, 1)
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
}
