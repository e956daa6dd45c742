package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/interleave"
	"github.com/anonfolio/anonfolio/pin"
)

// The interleaving suite runs each pair of public operations that can race
// under internal/interleave: one P, asynchronous preemption stopping each at
// arbitrary instructions, for -interleave.time per run. Each operation
// checks what it relies on as it goes (a pin sees the space's writes and the
// space the pin's, a Fork's child never sees what is written after it, a
// Get taken before a Fork never changes, a write-protected range takes no
// write) and a Check operation runs alongside, so that a broken state is
// caught the moment it exists. These are the windows no test hook reaches:
// a pin between its grab and its count while a huge entry splits, a Check
// between a pin's fast and slow path, a release half done.

// world is an arena, one space the operations share, and the forks they
// make, registered so that Check can be given every live space.
type world struct {
	t     *testing.T
	a     *folio.Arena
	s     *cow.Space
	ps    int
	token atomic.Uint64
	// changes counts the operations that changed entries (splits,
	// protections, moves): a pin that saw it move verifies itself.
	changes atomic.Uint64

	mu sync.Mutex
	// live are the spaces forked and not yet closed.
	// +checklocks:mu
	live map[*cow.Space]bool
}

func newWorld(t *testing.T, opts cow.Options) *world {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20, PageSize: 4096, RetainFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cow.NewSpace(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, a: a, s: s, ps: a.PageSize(), live: map[*cow.Space]bool{s: true}}
	t.Cleanup(func() {
		w.mu.Lock()
		for sp := range w.live {
			sp.Close()
		}
		w.mu.Unlock()
		if err := a.Close(); err != nil && !t.Failed() {
			t.Errorf("arena Close: %v (a leak)", err)
		}
	})
	return w
}

// region maps size bytes read-write and fills them.
func (w *world) region(size int) cow.Addr {
	addr, err := w.s.Map(size, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.s.WriteAt(bytes.Repeat([]byte{'i'}, size), int64(addr)); err != nil {
		w.t.Fatal(err)
	}
	return addr
}

func (w *world) fork(s *cow.Space) (*cow.Space, error) {
	c, err := s.Fork()
	if err == nil {
		w.mu.Lock()
		w.live[c] = true
		w.mu.Unlock()
	}
	return c, err
}

// close closes s, then forgets it: a Check may be given a closed space.
func (w *world) close(s *cow.Space) {
	s.Close()
	w.mu.Lock()
	delete(w.live, s)
	w.mu.Unlock()
}

// check runs cow.Check over the live spaces. A Fork that returned but is
// not registered yet makes Check refuse the list (ErrInvalid, "was not
// passed"): that round checks nothing, the next one will.
func (w *world) check(*rand.Rand) error {
	w.mu.Lock()
	list := make([]*cow.Space, 0, len(w.live))
	for s := range w.live {
		list = append(list, s)
	}
	w.mu.Unlock()
	err := cow.Check(list...)
	if errors.Is(err, cow.ErrInvalid) && strings.Contains(err.Error(), "was not passed") {
		return nil
	}
	return err
}

func (w *world) next() uint64 { return w.token.Add(1) }

func (w *world) read8(s *cow.Space, addr cow.Addr) (uint64, error) {
	var b [8]byte
	if _, err := s.ReadAt(b[:], int64(addr)); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (w *world) write8(s *cow.Space, addr cow.Addr, v uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	_, err := s.WriteAt(b[:], int64(addr))
	return err
}

// collapsingPinStep is pinStep on a 2 MiB range that it keeps collapsed
// into one huge entry: when it finds the range split (by the other
// operations) it collapses it first, holding nothing, so that its pins go
// through the huge entry, which a split may replace under them.
func (w *world) collapsingPinStep(huge cow.Addr, n int, flags pin.Flags) func(*rand.Rand) error {
	pinStep := w.pinStep(huge, n, flags)
	return func(rng *rand.Rand) error {
		if m, ok := w.s.Pagemap(huge); !ok || !m.Huge {
			if err := w.s.Advise(huge, 2<<20, cow.Collapse); err != nil && !errors.Is(err, cow.ErrBusy) {
				return err
			}
		}
		return pinStep(rng)
	}
}

// splitHugeStep splits the huge entry over a 2 MiB range by dropping a page
// of [base, base+n pages), under whatever a preempted operation was doing
// with the entry; when the range is not huge it yields.
func (w *world) splitHugeStep(huge, base cow.Addr, n int) func(*rand.Rand) error {
	return func(rng *rand.Rand) error {
		if m, ok := w.s.Pagemap(huge); !ok || !m.Huge {
			runtime.Gosched()
			return nil
		}
		err := w.s.Advise(base+cow.Addr(rng.IntN(n)*w.ps), w.ps, cow.DontNeed)
		w.changes.Add(1)
		return err
	}
}

// pinStep pins a page of [base, base+n pages) (fast first, or the slow path
// only). If something changed the table meanwhile (w.changes moved), and
// now and then anyway, it writes through the pin, forks, writes through it
// again, and checks pin coherence in the parent and isolation in the child.
// The step is otherwise a bare Pin and Release, so that a preemption lands
// inside the pin often.
func (w *world) pinStep(base cow.Addr, n int, flags pin.Flags) func(*rand.Rand) error {
	return func(rng *rand.Rand) error {
		addr := base + cow.Addr(rng.IntN(n)*w.ps)
		changes := w.changes.Load()
		p, err := pin.Pin(w.s, addr, 8, pin.Write|flags)
		if err != nil {
			return err
		}
		defer p.Release()
		if w.changes.Load() == changes && rng.IntN(1024) != 0 {
			return nil // a Fork copies the pinned folio: keep it rare
		}
		put := func(v uint64) { binary.LittleEndian.PutUint64(p.Bytes()[0], v) }
		before, after := w.next(), w.next()
		put(before)
		c, err := w.fork(w.s)
		if err != nil {
			return err
		}
		defer w.close(c)
		put(after)
		if got, err := w.read8(w.s, addr); err != nil || got != after {
			return fmt.Errorf("pin coherence at %#x: the space reads %d (%v), the pin wrote %d", uint64(addr), got, err, after)
		}
		if got, err := w.read8(c, addr); err != nil || got != before {
			return fmt.Errorf("isolation at %#x: the child reads %d (%v), want %d from before the Fork; %d was written through the pin after it",
				uint64(addr), got, err, before, after)
		}
		return nil
	}
}

// splitStep runs an operation that splits the huge entry over [base,
// base+n pages) or changes the entries there, leaving their contents alone
// (DontNeed aside, which drops one page), and now and then collapses the
// whole 2 MiB range back into a huge entry.
func (w *world) splitStep(huge, base cow.Addr, n int, spare cow.Addr) func(*rand.Rand) error {
	return func(rng *rand.Rand) error {
		pg := base + cow.Addr(rng.IntN(n)*w.ps)
		rw := cow.ProtRead | cow.ProtWrite
		var err error
		switch rng.IntN(6) {
		case 0:
			err = w.s.Advise(pg, w.ps, cow.DontNeed)
		case 1:
			if err = w.s.Protect(pg, w.ps, cow.ProtRead); err == nil {
				err = w.s.Protect(pg, w.ps, rw)
			}
		case 2:
			err = w.s.WriteProtect(pg, w.ps)
		case 3:
			err = w.s.MapFixed(pg, w.ps, rw)
		case 4:
			if err = w.s.Remap(pg, w.ps, spare); err == nil {
				err = w.s.Remap(spare, w.ps, pg)
			}
		case 5:
			if err = w.s.Advise(huge, 2<<20, cow.Collapse); errors.Is(err, cow.ErrBusy) {
				err = nil // a pin or a child holds a page: left as it is
			}
		}
		w.changes.Add(1)
		return err
	}
}

// getStep takes a Get on a page of [base, base+n pages), forks, and then
// writes the page on both sides with one side closing in between (cow.c's
// "vmsplice() before fork()" with exit for munmap): what the Get holds must
// stay what it held at the Fork throughout. Half the time the Get is taken
// in the space that closes.
func (w *world) getStep(base cow.Addr, n int) func(*rand.Rand) error {
	return func(rng *rand.Rand) error {
		addr := base + cow.Addr(rng.IntN(n)*w.ps)
		from := w.s
		if rng.IntN(2) == 0 {
			c, err := w.fork(w.s) // the Get's space, which closes
			if err != nil {
				return err
			}
			defer w.close(c)
			from = c
		}
		held := w.next()
		if err := w.write8(from, addr, held); err != nil {
			return err
		}
		g, err := pin.Get(from, addr, 8, 0)
		if err != nil {
			return err
		}
		defer g.Release()
		other, err := w.fork(from)
		if err != nil {
			return err
		}
		stays, goes := from, other // the Get's space stays, the child goes
		if from != w.s {
			stays, goes = other, from
		}
		steps := []func() error{
			func() error { return w.write8(goes, addr, w.next()) },
			func() error { return w.write8(stays, addr, w.next()) },
			func() error { w.close(goes); return nil },
			func() error { return w.write8(stays, addr, w.next()) },
		}
		if rng.IntN(2) == 0 {
			steps = steps[2:] // the close while the leaf is still shared
		}
		if stays != w.s {
			defer w.close(stays)
		}
		for k, step := range steps {
			if err := step(); err != nil {
				return err
			}
			if got := binary.LittleEndian.Uint64(g.Bytes()[0]); got != held {
				return fmt.Errorf("a Get taken before a Fork reads %d after step %d (the Get's own space closed: %v), want %d",
					got, k, goes == from, held)
			}
		}
		return nil
	}
}

// forkCloseStep forks the space and closes a child, or closes one made
// earlier.
func (w *world) forkCloseStep(kids *[]*cow.Space) func(*rand.Rand) error {
	return func(rng *rand.Rand) error {
		if len(*kids) < 3 && rng.IntN(2) == 0 {
			c, err := w.fork(w.s)
			if err != nil {
				return err
			}
			*kids = append(*kids, c)
			return nil
		}
		if len(*kids) > 0 {
			i := rng.IntN(len(*kids))
			w.close((*kids)[i])
			*kids = append((*kids)[:i], (*kids)[i+1:]...)
		}
		return nil
	}
}

// writeStep writes a token over [base, base+size) with WriteAt; a
// protection error is what a write during a Protect gets.
func (w *world) writeStep(base cow.Addr, size int) func(*rand.Rand) error {
	buf := make([]byte, size)
	return func(rng *rand.Rand) error {
		binary.LittleEndian.PutUint64(buf, w.next())
		for i := w.ps; i < size; i += w.ps {
			copy(buf[i:i+8], buf[:8])
		}
		if _, err := w.s.WriteAt(buf, int64(base)); err != nil && !errors.Is(err, cow.ErrProtection) {
			return err
		}
		return nil
	}
}

// protectStep makes [base, base+size) read-only, checks that nothing lands
// in it while it is (a write that began before Protect finished first), and
// makes it writable again; or write-protects it.
func (w *world) protectStep(base cow.Addr, size int) func(*rand.Rand) error {
	snap, again := make([]byte, size), make([]byte, size)
	return func(rng *rand.Rand) error {
		if rng.IntN(3) == 0 {
			return w.s.WriteProtect(base, size)
		}
		if err := w.s.Protect(base, size, cow.ProtRead); err != nil {
			return err
		}
		if _, err := w.s.ReadAt(snap, int64(base)); err != nil {
			return err
		}
		runtime.Gosched() // the writer runs here, if it is runnable
		if _, err := w.s.ReadAt(again, int64(base)); err != nil {
			return err
		}
		if !bytes.Equal(snap, again) {
			i := 0
			for snap[i] == again[i] {
				i++
			}
			return fmt.Errorf("byte %d of a read-only range changed after Protect returned", i)
		}
		return w.s.Protect(base, size, cow.ProtRead|cow.ProtWrite)
	}
}

// remapStep moves [base, base+size) away and back, or drops a page of it.
func (w *world) remapStep(base cow.Addr, size int, spare cow.Addr) func(*rand.Rand) error {
	return func(rng *rand.Rand) error {
		if rng.IntN(3) == 0 {
			return w.s.Advise(base+cow.Addr(rng.IntN(size/w.ps)*w.ps), w.ps, cow.DontNeed)
		}
		if err := w.s.Remap(base, size, spare); err != nil {
			return err
		}
		return w.s.Remap(spare, size, base)
	}
}

// readStep reads [base, base+size); a fault is what a read gets while the
// range is away.
func (w *world) readStep(base cow.Addr, size int) func(*rand.Rand) error {
	buf := make([]byte, size)
	return func(rng *rand.Rand) error {
		if _, err := w.s.ReadAt(buf, int64(base)); err != nil && !errors.Is(err, cow.ErrFault) {
			return err
		}
		return nil
	}
}

// withCheck adds the Check operation to ops: one step in eight checks, the
// others yield at once, so that the operations under test get most of the
// time.
func (w *world) withCheck(ops ...interleave.Op) []interleave.Op {
	return append(ops, interleave.Op{Name: "Check", Step: func(rng *rand.Rand) error {
		if rng.IntN(8) != 0 {
			runtime.Gosched()
			return nil
		}
		return w.check(rng)
	}})
}

// allOrders is every folio order: huge entries, contpte blocks and small
// folios all appear.
func allOrders() cow.OrderSet {
	g, _ := folio.NewGeometry(4096, 0)
	var o []int
	for i := 1; i <= g.MaxOrder; i++ {
		o = append(o, i)
	}
	return cow.Orders(o...)
}

func TestInterleavings(t *testing.T) {
	const half = 256 // pages: the pinner's half of a 2 MiB slot, and the splitter's
	runs := []struct {
		name string
		ops  func(w *world) []interleave.Op
	}{
		{"pin fast × split of its huge entry", func(w *world) []interleave.Op {
			huge := w.region(2 << 20)
			return w.withCheck(
				interleave.Op{Name: "Pin", Step: w.collapsingPinStep(huge, half, 0)},
				interleave.Op{Name: "split", Step: w.splitHugeStep(huge, huge+half*4096, half)})
		}},
		{"pin slow × split of its huge entry", func(w *world) []interleave.Op {
			huge := w.region(2 << 20)
			return w.withCheck(
				interleave.Op{Name: "Pin(SlowOnly)", Step: w.collapsingPinStep(huge, half, pin.SlowOnly)},
				interleave.Op{Name: "split", Step: w.splitHugeStep(huge, huge+half*4096, half)})
		}},
		{"pin × every split", func(w *world) []interleave.Op {
			huge, spare := w.region(2<<20), w.region(2<<20)
			return w.withCheck(
				interleave.Op{Name: "Pin", Step: w.pinStep(huge, half, 0)},
				interleave.Op{Name: "split", Step: w.splitStep(huge, huge+half*4096, half, spare)})
		}},
		{"get × fork/close × split", func(w *world) []interleave.Op {
			huge, spare := w.region(2<<20), w.region(2<<20)
			var kids []*cow.Space
			return w.withCheck(
				interleave.Op{Name: "Get", Step: w.getStep(huge, half)},
				interleave.Op{Name: "Fork/Close", Step: w.forkCloseStep(&kids)},
				interleave.Op{Name: "split", Step: w.splitStep(huge, huge+half*4096, half, spare)})
		}},
		{"pin × fork/close", func(w *world) []interleave.Op {
			huge := w.region(2 << 20)
			var kids []*cow.Space
			return w.withCheck(
				interleave.Op{Name: "Pin", Step: w.pinStep(huge, 2*half, 0)},
				interleave.Op{Name: "Fork/Close", Step: w.forkCloseStep(&kids)})
		}},
		{"WriteAt × Protect/WriteProtect", func(w *world) []interleave.Op {
			r := w.region(2 << 20)
			return w.withCheck(
				interleave.Op{Name: "WriteAt", Step: w.writeStep(r, 512<<10)},
				interleave.Op{Name: "Protect", Step: w.protectStep(r, 512<<10)})
		}},
		{"ReadAt/WriteAt × Remap/DontNeed", func(w *world) []interleave.Op {
			r, spare := w.region(2<<20), w.region(2<<20)
			return w.withCheck(
				interleave.Op{Name: "WriteAt", Step: func(rng *rand.Rand) error {
					err := w.writeStep(r, 64<<10)(rng)
					if errors.Is(err, cow.ErrFault) {
						return nil // the range is away
					}
					return err
				}},
				// Not the writer's bytes: unsynchronised reads and writes of
				// the same bytes race, as on any memory.
				interleave.Op{Name: "ReadAt", Step: w.readStep(r+64<<10, 64<<10)},
				interleave.Op{Name: "Remap", Step: w.remapStep(r, 128<<10, spare)})
		}},
		{"pin and Get × Check", func(w *world) []interleave.Op {
			r := w.region(2 << 20)
			return []interleave.Op{
				{Name: "Pin", Step: w.pinStep(r, half, 0)},
				{Name: "Get", Step: func(rng *rand.Rand) error {
					g, err := pin.Get(w.s, r+cow.Addr((half+rng.IntN(half))*4096), 8, 0)
					if err == nil {
						g.Release()
					}
					return err
				}},
				{Name: "Check", Step: w.check}, // every step: it follows each preemption
			}
		}},
		{"pin/release × SplitDeferred × Check", func(w *world) []interleave.Op {
			r := w.region(2 << 20)
			return w.withCheck(
				interleave.Op{Name: "Pin", Step: w.pinStep(r, half, 0)},
				interleave.Op{Name: "DontNeed+SplitDeferred", Step: func(rng *rand.Rand) error {
					pg := r + cow.Addr((half+rng.IntN(half))*4096)
					if err := w.s.Advise(pg, 4096, cow.DontNeed); err != nil {
						return err
					}
					if err := w.write8(w.s, pg, w.next()); err != nil {
						return err
					}
					w.s.SplitDeferred()
					return nil
				}})
		}},
	}
	for _, r := range runs {
		t.Run(strings.ReplaceAll(r.name, " ", "_"), func(t *testing.T) {
			w := newWorld(t, cow.Options{Orders: allOrders()})
			interleave.Run(t, 0, 1, r.ops(w)...)
			if err := w.check(nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}
