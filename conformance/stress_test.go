package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/pin"
)

// TestStress runs writers, pinners, a forker and a closer at once on one
// space and its children, for every page size and folio configuration,
// and verifies every byte anyone reads: each writer and pinner owns pages
// of the parent and versions them, a child must read at every page a
// version that was written before its Fork returned and not overwritten
// before it began, pins must see the writes of the space and the space
// theirs, a child's writes must never show in the parent, and a pin of a
// child keeps what it held when the child is closed under it. Each round
// ends with cow.Check; at the end every page must come back.
// Each configuration runs half the time with each COW copy unit;
// -conformance.stress=D runs each configuration for D.
//
// It differs from cow's and pin's stress tests in what it verifies: exact
// versions per page across Fork, both directions of pin coherence while
// forks copy the pinned folios, and pins outliving Close, at 4, 16 and 64
// KiB pages.
func TestStress(t *testing.T) {
	d := 200 * time.Millisecond
	if testing.Short() {
		d = 60 * time.Millisecond
	}
	if *longRun > 0 {
		d = *longRun
	}
	matrix(t, func(t *testing.T, p pageSetup, opts cow.Options) {
		for _, unit := range []cow.CopyUnit{cow.CopyPage, cow.CopyFolio} {
			opts.CopyUnit = unit
			t.Run(copyUnitName[unit], func(t *testing.T) {
				st := newStress(t, p, opts)
				rounds := max(1, int(d/(100*time.Millisecond)))
				for range rounds {
					st.round(d / time.Duration(2*rounds))
				}
				st.closeAll()
				t.Logf("%d writes, %d pins, %d forks verified, %d closes",
					st.writes.Load(), st.pins.Load(), st.forks.Load(), st.closes.Load())
			})
		}
	})
}

const (
	stressOwners = 4 // writers 0 and 1, pinners 2 and 3
	stressGroup  = 4 // consecutive pages an owner owns, interleaved with the others
	childTag     = 0xff
)

// stress is the state of one configuration's stress test.
type stress struct {
	t     *testing.T
	e     *spacetest.Env
	root  *cow.Space
	base  cow.Addr
	ps    int
	pages int

	// Per page of the root: the version its owner started writing last
	// and the one it finished last. A page reads versions in between.
	started []atomic.Uint64
	done    []atomic.Uint64

	mu       sync.Mutex
	children []*cow.Space // +checklocks:mu
	failed   atomic.Bool

	// For the log. (One field per line: checklocks misplaces the
	// annotations of the fields after a multi-name declaration.)
	writes atomic.Int64
	pins   atomic.Int64
	forks  atomic.Int64
	closes atomic.Int64
}

func newStress(t *testing.T, p pageSetup, opts cow.Options) *stress {
	g := p.geometry(t)
	pages := 2 << g.MaxOrder
	e := p.env(t, int64(8*pages*g.PageSize)) // the root and up to six children and grandchildren
	st := &stress{t: t, e: e, ps: g.PageSize, pages: pages,
		started: make([]atomic.Uint64, pages), done: make([]atomic.Uint64, pages)}
	st.root = e.Space(opts)
	st.base = e.Map(st.root, pages*g.PageSize, cow.ProtRead|cow.ProtWrite)
	return st
}

// owner returns the owner of page p.
func owner(p int) int { return p / stressGroup % stressOwners }

// stamp fills b, one page, with 8-byte words naming the owner, the page
// and the version; a torn page shows as words that differ.
func stamp(b []byte, own, page int, v uint64) {
	w := uint64(own)<<56 | uint64(page)<<40 | v
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], w)
	}
}

// unstamp decodes the word at i of a page.
func unstamp(b []byte, i int) (own, page int, v uint64) {
	w := binary.LittleEndian.Uint64(b[i:])
	return int(w >> 56), int(w >> 40 & 0xffff), w & (1<<40 - 1)
}

func (st *stress) fail(format string, args ...any) {
	st.t.Helper()
	st.t.Errorf(format, args...)
	st.failed.Store(true)
}

func (st *stress) addr(p int) cow.Addr { return st.base + cow.Addr(p*st.ps) }

// ownPage returns a random page of owner own, the first of its group when
// first.
func (st *stress) ownPage(rng *rand.Rand, own int, first bool) int {
	groups := st.pages / stressGroup / stressOwners
	p := (rng.IntN(groups)*stressOwners + own) * stressGroup
	if !first {
		p += rng.IntN(stressGroup)
	}
	return p
}

// round runs every worker for d, then checks the invariants and the root.
func (st *stress) round(d time.Duration) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	worker := func(fn func(rng *rand.Rand)) {
		wg.Add(1)
		seed := rand.Uint64()
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 0))
			for !stop.Load() && !st.failed.Load() {
				fn(rng)
			}
		}()
	}
	// Writer 0 writes through the space, writer 1 through an Accessor of
	// its own (its software TLB across the forks, closes and splits).
	acc := st.root.NewAccessor()
	defer acc.Close()
	worker(func(rng *rand.Rand) { st.write(rng, 0, nil) })
	worker(func(rng *rand.Rand) { st.write(rng, 1, acc) })
	for w := 2; w < stressOwners; w++ {
		worker(func(rng *rand.Rand) { st.pin(rng, w) })
	}
	var f forker
	worker(func(rng *rand.Rand) { st.fork(rng, &f) })
	worker(func(rng *rand.Rand) { st.close(rng) })
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	f.release(st)
	if st.failed.Load() {
		st.t.FailNow()
	}
	st.mu.Lock()
	spaces := append([]*cow.Space{st.root}, st.children...)
	st.mu.Unlock()
	if err := cow.Check(spaces...); err != nil {
		st.t.Fatal(err)
	}
	b := make([]byte, st.ps)
	for p := range st.pages {
		st.read(st.root, p, b)
		st.verify(b, p, st.done[p].Load(), st.done[p].Load(), "root at the end of the round")
	}
}

// read reads page p of s into b.
func (st *stress) read(s *cow.Space, p int, b []byte) error {
	_, err := s.ReadAt(b, int64(st.addr(p)))
	if err != nil && !errors.Is(err, cow.ErrClosed) {
		st.fail("ReadAt page %d: %v", p, err)
	}
	return err
}

// verify checks that page p holds versions in [lo, hi] of its owner in
// every word, the same version in all unless a pin may have written it
// while a fork copied it.
func (st *stress) verify(b []byte, p int, lo, hi uint64, where string) {
	_, _, v0 := unstamp(b, 0)
	for i := 0; i < len(b); i += 8 {
		own, page, v := unstamp(b, i)
		var bad string
		switch {
		case v == 0 && own == 0 && page == 0: // never written
			if lo != 0 {
				bad = "is zero"
			}
		case own != owner(p) || page != p:
			bad = fmt.Sprintf("is owner %d's page %d", own, page)
		case v < lo || v > hi:
			bad = fmt.Sprintf("has version %d", v)
		}
		if bad == "" && v != v0 && owner(p) < 2 {
			bad = fmt.Sprintf("is torn: versions %d and %d", v0, v)
		}
		if bad != "" {
			st.fail("%s: page %d word %d %s; want versions in [%d, %d]", where, p, i/8, bad, lo, hi)
			return
		}
	}
}

// write is a writer: it versions one of its pages through WriteAt (of the
// space, or of acc) and reads it back (a child's write must not show),
// through acc too: ReadAt and an atomic load of a word.
func (st *stress) write(rng *rand.Rand, own int, acc *cow.Accessor) {
	p := st.ownPage(rng, own, false)
	b := make([]byte, st.ps)
	v := st.started[p].Add(1)
	stamp(b, own, p, v)
	var w io.WriterAt = st.root
	if acc != nil {
		w = acc
	}
	if _, err := w.WriteAt(b, int64(st.addr(p))); err != nil {
		st.fail("WriteAt: %v", err)
	}
	st.done[p].Store(v)
	st.read(st.root, p, b)
	st.verify(b, p, v, v, "root after its write")
	if acc != nil {
		if _, err := acc.ReadAt(b, int64(st.addr(p))); err != nil {
			st.fail("Accessor.ReadAt: %v", err)
		}
		st.verify(b, p, v, v, "root through the Accessor after its write")
		i := rng.IntN(st.ps/8) * 8
		word, err := acc.LoadUint64(st.addr(p) + cow.Addr(i))
		if err != nil {
			st.fail("Accessor.LoadUint64: %v", err)
		}
		binary.NativeEndian.PutUint64(b[i:], word)
		st.verify(b, p, v, v, "a word loaded through the Accessor after its write")
	}
	st.writes.Add(1)
}

// pin is a pinner: it pins a few of its pages, read-write or read-only,
// and versions them through the pin and through the space, each seen by
// the other, with forks copying the pinned folio meanwhile.
func (st *stress) pin(rng *rand.Rand, own int) {
	p := st.ownPage(rng, own, true)
	n := 1 + rng.IntN(stressGroup)
	flags := pin.Flags(0)
	if rng.IntN(2) == 0 {
		flags |= pin.Write
	}
	if rng.IntN(4) == 0 {
		flags |= pin.Longterm
	}
	pp, err := pin.Pin(st.root, st.addr(p), n*st.ps, flags)
	if err != nil {
		st.fail("Pin: %v", err)
		return
	}
	defer pp.Release()
	st.pins.Add(1)
	b := make([]byte, st.ps)
	for range 1 + rng.IntN(4) {
		q := p + rng.IntN(n)
		mem := pinned(pp.Bytes(), (q-p)*st.ps, st.ps)
		if flags&pin.Write != 0 { // through the pin, seen by the space
			v := st.started[q].Add(1)
			stamp(b, own, q, v)
			copy(mem, b)
			st.done[q].Store(v)
			st.read(st.root, q, b)
			st.verify(b, q, v, v, "root after a write through its pin")
		}
		v := st.started[q].Add(1) // through the space, seen by the pin
		stamp(b, own, q, v)
		if _, err := st.root.WriteAt(b, int64(st.addr(q))); err != nil {
			st.fail("WriteAt: %v", err)
		}
		st.done[q].Store(v)
		st.verify(mem, q, v, v, fmt.Sprintf("pin (%v) after a write through the space", flags))
		if rng.IntN(4) == 0 {
			runtime.Gosched() // let a fork copy the pinned folio
		}
	}
}

// pinned returns n bytes at off of a pin's slices, which must lie in one.
func pinned(parts [][]byte, off, n int) []byte {
	for _, p := range parts {
		if off < len(p) {
			return p[off : off+n]
		}
		off -= len(p)
	}
	return nil
}

// maxStressChildren bounds the live children, so that the root, the
// children and a grandchild fit the arena newStress sizes.
const maxStressChildren = 4

// forker is the forker's own state: its pins of children, with what they
// must keep reading.
type forker struct {
	pins []childPin
}

type childPin struct {
	p    *pin.Pages
	page int
	want []byte
}

func (f *forker) release(st *stress) {
	for _, cp := range f.pins {
		if got := pinned(cp.p.Bytes(), 0, st.ps); string(got) != string(cp.want) {
			st.fail("a pin of a child's page %d changed: %x…, want %x…", cp.page, got[:16], cp.want[:16])
		}
		cp.p.Release()
	}
	f.pins = nil
}

// fork is the forker: it forks the root and verifies the child's every
// page against the versions before and after, writes into the child, pins
// a page of it, and forks the child in turn (the grandchild must read as
// the child did).
func (st *stress) fork(rng *rand.Rand, f *forker) {
	// The arena holds the root and six more spaces: wait for the closer
	// rather than outrun it (four children, the new one, a grandchild).
	st.mu.Lock()
	full := len(st.children) >= maxStressChildren
	st.mu.Unlock()
	if full {
		time.Sleep(100 * time.Microsecond)
		return
	}
	lo := make([]uint64, st.pages)
	for p := range lo {
		lo[p] = st.done[p].Load()
	}
	c, err := st.root.Fork()
	if err != nil {
		st.fail("Fork: %v", err)
		return
	}
	b := make([]byte, st.ps)
	for p := range st.pages {
		st.read(c, p, b)
		st.verify(b, p, lo[p], st.started[p].Load(), "child")
	}
	st.forks.Add(1)
	// The child's own write, never seen by the root (whose owners check).
	p := rng.IntN(st.pages)
	stamp(b, childTag, p, 1)
	if _, err := c.WriteAt(b, int64(st.addr(p))); err != nil {
		st.fail("child WriteAt: %v", err)
	}
	cp, err := pin.Pin(c, st.addr(p), st.ps, pin.Flags(rng.IntN(2))&pin.Write)
	if err != nil {
		st.fail("Pin of a child: %v", err)
	} else {
		f.pins = append(f.pins, childPin{p: cp, page: p, want: append([]byte(nil), b...)})
	}
	if len(f.pins) > 4 {
		f.pins[0].p.Release()
		f.pins = f.pins[1:]
	}
	st.mu.Lock()
	st.children = append(st.children, c)
	old := st.children[rng.IntN(len(st.children))]
	st.mu.Unlock()
	// A grandchild of a child the closer may be closing.
	gc, err := old.Fork()
	if errors.Is(err, cow.ErrClosed) {
		return
	} else if err != nil {
		st.fail("Fork of a child: %v", err)
		return
	}
	defer gc.Close()
	g := make([]byte, st.ps)
	for p := range st.pages {
		if st.read(old, p, b) != nil {
			return
		}
		st.read(gc, p, g)
		if string(b) != string(g) {
			st.fail("a grandchild's page %d differs from its parent's", p)
			return
		}
	}
}

// close is the closer: it closes a random child when more than two live.
func (st *stress) close(rng *rand.Rand) {
	st.mu.Lock()
	var c *cow.Space
	if len(st.children) > 2 {
		i := rng.IntN(len(st.children))
		c = st.children[i]
		st.children = append(st.children[:i], st.children[i+1:]...)
	}
	st.mu.Unlock()
	if c == nil {
		time.Sleep(100 * time.Microsecond)
		return
	}
	if err := c.Close(); err != nil {
		st.fail("Close: %v", err)
	}
	st.closes.Add(1)
}

func (st *stress) closeAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, c := range st.children {
		c.Close()
	}
	st.children = nil
}
