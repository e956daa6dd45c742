package slab

import (
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// TestAllocSizes allocates one block of sizes around every class boundary
// up to 1 MiB: each is at least as large as asked, aligned, reads zero, and
// keeps what is written to it while the others are written.
func TestAllocSizes(t *testing.T) {
	e := newEnv(t, 256<<20, cow.Options{}, Options{})
	type blk struct {
		p cow.Addr
		n int
	}
	var live []blk
	largest := uint64(1 << 20)
	if testing.Short() {
		largest = 64 << 10
	}
	for c := 0; classSize(c) <= largest; c++ {
		size := int(classSize(c))
		for _, n := range []int{size - 7, size} {
			if n <= 0 {
				continue
			}
			p := mustAlloc(t, e.h, n)
			got, err := e.h.Size(p)
			if err != nil || got != size {
				t.Fatalf("Size of Alloc(%d) = %d, %v; want %d", n, got, err, size)
			}
			if p%8 != 0 || size&(size-1) == 0 && uint64(p)%uint64(min(size, 2<<20)) != 0 {
				t.Fatalf("Alloc(%d) = %#x: misaligned", n, uint64(p))
			}
			expectZero(t, e.s, p, size)
			e.Write(e.s, p, pattern(uint64(p), size))
			live = append(live, blk{p, size})
		}
	}
	for _, b := range live {
		e.Expect(e.s, b.p, pattern(uint64(b.p), b.n))
	}
	check(t, e.h)
	for _, b := range live {
		mustFree(t, e.h, b.p)
	}
	st, err := e.h.Stats()
	if err != nil || st.Blocks != 0 || st.InUse != 0 {
		t.Fatalf("after freeing everything: %+v, %v", st, err)
	}
}

// TestReuseReadsZero frees blocks written full and checks that the blocks
// handed out next (the same ones: lowest free first) read zero.
func TestReuseReadsZero(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{}, Options{})
	for _, n := range []int{8, 64, 100, 4000, 9000, 40 << 10, 300 << 10} {
		var ps []cow.Addr
		for range 70 { // more than a slab, so a slab fills and goes back on the list
			p := mustAlloc(t, e.h, n)
			size, _ := e.h.Size(p)
			e.Write(e.s, p, pattern(uint64(p), size))
			ps = append(ps, p)
		}
		for _, p := range ps {
			mustFree(t, e.h, p)
		}
		seen := map[cow.Addr]bool{}
		for range 70 {
			p := mustAlloc(t, e.h, n)
			size, _ := e.h.Size(p)
			expectZero(t, e.s, p, size)
			seen[p] = true
		}
		reused := 0
		for _, p := range ps {
			if seen[p] {
				reused++
				mustFree(t, e.h, p)
			}
		}
		if reused != len(ps) {
			t.Errorf("Alloc(%d): %d of %d freed blocks handed out again", n, reused, len(ps))
		}
		check(t, e.h)
	}
}

// TestLargeFreeGivesPagesBack: a freed large block's pages go back to the
// arena at once, and a small slab emptied away from the head of its list
// gives its pages back too.
func TestLargeFreeGivesPagesBack(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{Orders: cow.Orders()}, Options{})
	free0 := e.A.Stats().FreePages
	p := mustAlloc(t, e.h, 1<<20)
	e.Write(e.s, p, pattern(1, 1<<20))
	used := free0 - e.A.Stats().FreePages
	if used < (1<<20)/int64(e.s.PageSize()) {
		t.Fatalf("a written 1 MiB block uses %d pages", used)
	}
	mustFree(t, e.h, p)
	if back := e.A.Stats().FreePages - (free0 - used); back < (1<<20)/int64(e.s.PageSize()) {
		t.Fatalf("freeing a 1 MiB block gave back %d pages", back)
	}

	// Two full slabs of 64 blocks of a 64th of a page: a page each. Freeing
	// a block of the second, then one of the first, puts the first at the
	// head of the partial list; emptying the second then gives its page
	// back.
	ps := e.s.PageSize()
	var first, second []cow.Addr
	for range 64 {
		first = append(first, mustAlloc(t, e.h, ps/64))
	}
	for range 64 {
		q := mustAlloc(t, e.h, ps/64)
		e.Write(e.s, q, pattern(2, ps/64))
		second = append(second, q)
	}
	mustFree(t, e.h, second[0])
	mustFree(t, e.h, first[0])
	before := e.A.Stats().FreePages
	for _, q := range second[1:] {
		mustFree(t, e.h, q)
	}
	if got := e.A.Stats().FreePages - before; got != 1 {
		t.Errorf("emptying a one-page slab away from the head gave back %d pages, want 1", got)
	}
	for _, q := range first[1:] {
		mustFree(t, e.h, q)
	}
}

// TestClassFull: a class whose area is used up says so with
// folio.ErrNoMemory, and keeps working after frees.
func TestClassFull(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{}, Options{ClassReserve: minClassReserve})
	size := minClassReserve / 8
	var ps []cow.Addr
	for {
		p, err := e.h.Alloc(size)
		if err != nil {
			if !errors.Is(err, folio.ErrNoMemory) {
				t.Fatalf("Alloc past the class's area: %v, want folio.ErrNoMemory", err)
			}
			break
		}
		ps = append(ps, p)
	}
	if len(ps) != 7 {
		t.Errorf("the largest class held %d blocks, want 7", len(ps))
	}
	if _, err := e.h.Alloc(size + 1); !errors.Is(err, folio.ErrNoMemory) {
		t.Errorf("Alloc beyond the largest class: %v, want folio.ErrNoMemory", err)
	}
	mustFree(t, e.h, ps[3])
	if p := mustAlloc(t, e.h, size); p != ps[3] {
		t.Errorf("after a free, Alloc = %#x, want the freed %#x", uint64(p), uint64(ps[3]))
	}
}

// TestArenaFull: running out of arena memory is folio.ErrNoMemory from the
// write that needed it, and leaves the allocator consistent.
func TestArenaFull(t *testing.T) {
	e := newEnv(t, 8<<20, cow.Options{Orders: cow.Orders()}, Options{})
	var ps []cow.Addr
	var err error
	for i := 0; ; i++ {
		var p cow.Addr
		if p, err = e.h.Alloc(48 << 10); err != nil {
			break
		}
		if _, err = e.s.WriteAt(pattern(uint64(i), 48<<10), int64(p)); err != nil {
			ps = append(ps, p)
			break
		}
		ps = append(ps, p)
	}
	if !errors.Is(err, folio.ErrNoMemory) {
		t.Fatalf("filling the arena: %v, want folio.ErrNoMemory", err)
	}
	// Small allocations may now fail too: each must either succeed or say
	// ErrNoMemory, and the state must stay whole.
	for range 100 {
		if _, err := e.h.Alloc(24); err != nil && !errors.Is(err, folio.ErrNoMemory) {
			t.Fatalf("Alloc(24) with the arena full: %v", err)
		}
	}
	check(t, e.h)
	for _, p := range ps {
		mustFree(t, e.h, p)
	}
	p := mustAlloc(t, e.h, 24)
	expectZero(t, e.s, p, 24)
}

// TestPartialList follows the class word through the list changes: a slab
// that fills leaves the list, one that was full comes back at its head,
// and none of it leaves the class busy.
func TestPartialList(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	c := &e.h.st.cls[classOf(32)]
	word := func() uint64 {
		t.Helper()
		w, err := newAccessor(e.s).LoadUint64(c.geo.word)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	expect := func(head, slabs uint64) {
		t.Helper()
		if w := word(); w != classWord(head, slabs) {
			t.Fatalf("class word %#x (head %d, %d slabs, busy %v), want head %d, %d slabs",
				w, wordHead(w), wordSlabs(w), w&busyBit != 0, head, slabs)
		}
	}
	var ps []cow.Addr
	for range 63 {
		ps = append(ps, mustAlloc(t, e.h, 32))
	}
	expect(1, 1)
	ps = append(ps, mustAlloc(t, e.h, 32)) // slab 0 fills and leaves the list
	expect(0, 1)
	ps = append(ps, mustAlloc(t, e.h, 32)) // slab 1 is carved
	expect(2, 2)
	mustFree(t, e.h, ps[5]) // slab 0 was full: back at the head
	expect(1, 2)
	if p := mustAlloc(t, e.h, 32); p != ps[5] { // and it fills again
		t.Fatalf("Alloc = %#x, want the block just freed, %#x", uint64(p), uint64(ps[5]))
	}
	expect(2, 2)
	check(t, e.h)
}

// TestStats counts blocks, slabs and free bytes of a known state.
func TestStats(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{}, Options{})
	var small []cow.Addr
	for range 70 {
		small = append(small, mustAlloc(t, e.h, 60)) // 64-byte class: a full slab and 6 blocks of another
	}
	for range 3 {
		mustAlloc(t, e.h, 40<<10) // large
	}
	mustFree(t, e.h, small[1])
	mustFree(t, e.h, small[69])
	st, err := e.h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Classes: []ClassStats{
			{Size: 64, Blocks: 68, FreeBlocks: 60, Slabs: 2},
			{Size: 40 << 10, Blocks: 3, FreeBlocks: int64(e.h.st.cls[classOf(40<<10)].geo.blocks) - 3, Slabs: 1},
		},
		Blocks: 71,
		InUse:  68*64 + 3*40<<10,
		Free:   60 * 64,
	}
	want.Fragmentation = float64(want.Free) / float64(want.InUse+want.Free)
	if len(st.Classes) != 2 || st.Classes[0] != want.Classes[0] || st.Classes[1] != want.Classes[1] ||
		st.Blocks != want.Blocks || st.InUse != want.InUse || st.Free != want.Free || st.Fragmentation != want.Fragmentation {
		t.Fatalf("Stats =\n%+v, want\n%+v", st, want)
	}
}

// TestChunks fills a class past its first chunks, where slab numbers skip
// the values that stand for no slab (3072-byte blocks: 11 slabs a chunk,
// numbered 0-10, then 16-26, ...), frees every other block, forces a
// repair of the list, and takes every free block back.
func TestChunks(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{}, Options{})
	c := &e.h.st.cls[classOf(3000)]
	if c.geo.perChunk == 1<<c.geo.perShift {
		t.Fatalf("%d slabs a chunk: no gap to skip", c.geo.perChunk)
	}
	n := 3*int(c.geo.blocks) + 5
	seen := map[cow.Addr]bool{}
	var ps []cow.Addr
	for range n {
		p := mustAlloc(t, e.h, 3000)
		if seen[p] {
			t.Fatalf("%#x handed out twice", uint64(p))
		}
		seen[p] = true
		ps = append(ps, p)
	}
	if last := ps[n-1]; last < c.geo.chunk(3) {
		t.Fatalf("block %d at %#x is not in chunk 3 (%#x)", n-1, uint64(last), uint64(c.geo.chunk(3)))
	}
	for i := 0; i < n; i += 2 {
		mustFree(t, e.h, ps[i])
	}
	a := newAccessor(e.s)
	w, _ := a.LoadUint64(c.geo.word)
	if err := a.StoreUint64(c.geo.word, w|busyBit); err != nil {
		t.Fatal(err)
	}
	if err := e.h.Check(); err != nil { // repairs, then checks
		t.Fatal(err)
	}
	for i := 0; i < n; i += 2 {
		if p := mustAlloc(t, e.h, 3000); !seen[p] {
			t.Fatalf("after the repair, Alloc = %#x, not a block freed", uint64(p))
		}
	}
	// Three full chunks of 11 slabs, and one slab of 5 blocks in chunk 3.
	want := ClassStats{Size: 3072, Blocks: int64(n), FreeBlocks: 59, Slabs: 34, FullSlabs: 33}
	if st, err := e.h.Stats(); err != nil || len(st.Classes) != 1 || st.Classes[0] != want {
		t.Fatalf("Stats: %+v, %v; want %+v", st.Classes, err, want)
	}
}
