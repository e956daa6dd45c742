package pin

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/cow"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// Flags modify Pin and Get.
type Flags uint

const (
	// Write (FOLL_WRITE): the pages are made writable, and so exclusive,
	// before they are taken.
	Write Flags = 1 << iota
	// Longterm (FOLL_LONGTERM): the pages will be held for long, as a
	// registered I/O buffer is. anonfolio has no movable memory to migrate
	// them out of, so it changes nothing but is recorded.
	Longterm
	// FastOnly (FOLL_FAST_ONLY): never fault or take a lock: fail with
	// ErrFastFailed instead, holding nothing.
	FastOnly
	// SlowOnly never tries the lockless walk: it takes the map lock at once
	// and faults as needed, as pin_user_pages and get_user_pages do (the
	// kernel's "GUP" as against "GUP-fast"). The result is the same; it is
	// for callers that know the range needs faulting, and for tests that
	// must exercise the locked path. FastOnly|SlowOnly is ErrInvalid.
	SlowOnly

	allFlags = Write | Longterm | FastOnly | SlowOnly
)

// ErrFastFailed: FastOnly was given and the fast path could not take the
// whole range.
var ErrFastFailed = errors.New("pin: the fast path could not take the whole range")

// Pages are pages pinned (Pin) or referenced (Get) from a space. They hand
// out the backing memory of the range until Release.
type Pages struct {
	a      *folio.Arena
	pin    bool
	flags  Flags
	addr   cow.Addr // the range asked for, for String
	length int
	runs   []run
	bytes  [][]byte
	done   atomic.Bool // released

	// The first run and slice live here: a range within one folio, the
	// common case, costs one allocation.
	run0   [1]run
	bytes0 [1][]byte
}

// run is a run of pages of one folio taken as one unit.
type run struct {
	head, pfn folio.PFN
	n         int
	zero      bool
}

// Pin pins the pages of [addr, addr+length) (FOLL_PIN): each page is made
// AnonExclusive first (a write fault with Write, an unshare otherwise), so
// that writes through the space and through Bytes see each other until
// Release, whatever Forks happen.
func Pin(s *cow.Space, addr cow.Addr, length int, flags Flags) (*Pages, error) {
	return take(s, addr, length, flags, true)
}

// Get takes plain references on the pages of [addr, addr+length)
// (FOLL_GET): nothing is unshared, Fork shares them as usual, but no write
// fault reuses a page while the reference is held.
func Get(s *cow.Space, addr cow.Addr, length int, flags Flags) (*Pages, error) {
	return take(s, addr, length, flags, false)
}

func take(space *cow.Space, addr cow.Addr, length int, flags Flags, pin bool) (*Pages, error) {
	s := (*mm.Space)(space)
	switch {
	case !s.Valid():
		return nil, fmt.Errorf("%w: a nil Space, or one not made by NewSpace or Fork", cow.ErrInvalid)
	case length <= 0:
		return nil, fmt.Errorf("%w: length %d", cow.ErrInvalid, length)
	case flags&^allFlags != 0, flags&(FastOnly|SlowOnly) == FastOnly|SlowOnly:
		return nil, fmt.Errorf("%w: flags %#x", cow.ErrInvalid, uint(flags))
	case uint64(addr) >= 1<<pte.VABits || uint64(length) > 1<<pte.VABits-uint64(addr):
		return nil, fmt.Errorf("%w %#x", cow.ErrFault, uint64(addr))
	}
	want := mm.WantHold
	if flags&Write != 0 {
		want |= mm.WantWrite
	}
	if pin {
		want |= mm.WantExclusive | mm.WantPin
	}
	ps := uint64(s.PageSize())
	first := uint64(addr) &^ (ps - 1)
	total := int((uint64(addr) + uint64(length) - first + ps - 1) / ps)
	p := &Pages{a: s.Arena(), pin: pin, flags: flags, addr: addr, length: length}
	p.runs = p.run0[:0]
	// Registered before anything is held: a Check from here on counts what
	// the runs hold as they are taken (in a lockless section, or under the
	// map lock, both of which Check waits for).
	track(p)
	done := 0
	if flags&SlowOnly == 0 {
		done = p.fast(s, mm.Addr(first), total, want)
		testhook.Run(testhook.PinFastDone)
	}
	if done < total {
		if flags&FastOnly != 0 {
			p.Release()
			if s.Closed() {
				return nil, fmt.Errorf("pin: %w", cow.ErrClosed)
			}
			return nil, ErrFastFailed
		}
		if err := p.slow(s, mm.Addr(first+uint64(done)*ps), total-done, want); err != nil {
			p.Release()
			return nil, err
		}
	}
	p.bytes = p.slices(uint64(addr)%ps, length, int(ps))
	return p, nil
}

// fast is GUP-fast: no lock, runs grabbed and rechecked, and for pins the
// whole lot undone if a Fork began meanwhile. It returns how many pages it
// took, from the first on.
func (p *Pages) fast(s *mm.Space, va mm.Addr, total int, want mm.Want) int {
	sec, ok := s.BeginFast()
	if !ok {
		return 0
	}
	defer sec.End()
	ps := mm.Addr(s.PageSize())
	done := 0
	for done < total {
		r, ok := s.GrabLockless(va, total-done, want)
		if !ok {
			break
		}
		p.hold(r)
		done += r.N
		va += mm.Addr(r.N) * ps
	}
	if p.pin && done > 0 && !sec.Unchanged() {
		p.undo() // a Fork began: it may have shared the pages; redo them locked
		return 0
	}
	return done
}

// slow is GUP's locked path: fault until each entry allows the access, then
// take the run under the PTL. Fork cannot run while the map lock is held.
func (p *Pages) slow(s *mm.Space, va mm.Addr, left int, want mm.Want) error {
	m, err := s.LockMap()
	if err != nil {
		return err
	}
	defer m.Unlock()
	ps := mm.Addr(s.PageSize())
	for left > 0 {
		r, need := m.Grab(va, left, want)
		if need != mm.NoFault {
			if err := m.Fault(va, need); err != nil {
				return err
			}
			continue
		}
		p.hold(r)
		left -= r.N
		va += mm.Addr(r.N) * ps
	}
	return nil
}

// hold keeps run r, whose folio the walk took one reference (a pin, for
// Pin) on: one per page.
func (p *Pages) hold(r mm.Run) {
	switch {
	case r.Zero:
		p.a.LedgerAdd(0, 0, 1) // the zero page outlives no arena
	case p.pin:
		if r.N > 1 {
			p.a.FolioPin(r.Head, r.N-1)
		}
		p.a.LedgerAdd(r.N, 0, 0)
		p.a.FolioMarkHeld(r.Head) // quarantined when freed, in the debug build
	default:
		if r.N > 1 {
			p.a.FolioGet(r.Head, r.N-1)
		}
		p.a.LedgerAdd(0, r.N, 0)
		p.a.FolioMarkHeld(r.Head)
	}
	p.runs = append(p.runs, run{head: r.Head, pfn: r.PFN, n: r.N, zero: r.Zero})
}

// undo drops everything held.
func (p *Pages) undo() {
	for _, r := range p.runs {
		switch {
		case r.zero:
			p.a.LedgerAdd(0, 0, -1)
		case p.pin:
			p.a.FolioUnpin(r.head, r.n)
			testhook.Run(testhook.ReleaseMidway)
			p.a.LedgerAdd(-r.n, 0, 0)
		default:
			p.a.FolioPut(r.head, r.n)
			p.a.LedgerAdd(0, -r.n, 0)
		}
	}
	p.runs = p.runs[:0]
}

// slices builds Bytes: one slice per physically contiguous run, covering
// exactly [off, off+length) of the pages.
func (p *Pages) slices(off uint64, length, ps int) [][]byte {
	out := p.bytes0[:0]
	skip, left := int(off), length
	for k := 0; k < len(p.runs); {
		r := p.runs[k]
		var mem []byte
		if r.zero {
			mem = p.a.ZeroPage()
			k++
		} else {
			// Merge the following runs that continue it in memory.
			pfn, n := r.pfn, r.n
			for k++; k < len(p.runs) && !p.runs[k].zero && p.runs[k].pfn == pfn+folio.PFN(n); k++ {
				n += p.runs[k].n
			}
			mem = p.a.PageBytes(pfn, n)
		}
		mem = mem[skip:]
		skip = 0
		if len(mem) > left {
			mem = mem[:left:left]
		}
		out = append(out, mem)
		left -= len(mem)
	}
	return out
}

// Bytes returns the memory of the range asked for, in address order, one
// slice per physically contiguous run (a whole large folio is one slice).
// After Release it returns nil, and slices it returned before must no
// longer be used (the anonfolio_debug build catches such writes; see the
// package doc). Writes to them are seen by the space for pins; a Get's
// memory is only to be read unless Write was given (and then only while no
// Fork shared it: that is what Pin is for).
func (p *Pages) Bytes() [][]byte {
	if p.done.Load() {
		return nil
	}
	return p.bytes
}

// String describes the pages in one line: pin or Get, the range, the runs,
// the flags, or that they were released.
func (p *Pages) String() string {
	if p == nil {
		return "pin.Pages(nil)"
	}
	kind := "Get"
	if p.pin {
		kind = "Pin"
	}
	if p.done.Load() {
		return fmt.Sprintf("pin.Pages(%s of %#x+%d, released)", kind, uint64(p.addr), p.length)
	}
	return fmt.Sprintf("pin.Pages(%s of %#x+%d in %d contiguous pieces, flags %v)",
		kind, uint64(p.addr), p.length, len(p.bytes), p.flags)
}

// String names the flags: "Write|Longterm".
func (f Flags) String() string {
	var names []string
	for _, n := range []struct {
		f    Flags
		name string
	}{{Write, "Write"}, {Longterm, "Longterm"}, {FastOnly, "FastOnly"}, {SlowOnly, "SlowOnly"}} {
		if f&n.f != 0 {
			names = append(names, n.name)
		}
	}
	if rest := f &^ allFlags; rest != 0 {
		names = append(names, fmt.Sprintf("%#x", uint(rest)))
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, "|")
}

// Pinned reports whether the pages are pinned (Pin) rather than referenced
// (Get).
func (p *Pages) Pinned() bool { return p.pin }

// Flags returns the flags the pages were taken with.
func (p *Pages) Flags() Flags { return p.flags }

// Release drops the pins or references, freeing folios whose last reference
// they were. It works after the space was closed; a second call is a no-op.
func (p *Pages) Release() {
	if p == nil || !p.done.CompareAndSwap(false, true) {
		return
	}
	// The folio counts and the ledger change together, as Check sees them.
	sec := p.a.LedgerEnter()
	untrack(p)
	p.undo()
	p.a.LedgerExit(sec)
}
