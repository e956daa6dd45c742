package pin

import (
	"errors"
	"fmt"
	"strings"

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
//
// A Pages is also a value its owner reuses, as a runtime.Pinner is: the
// methods Pin and Get take a range into it and Release gives it back, with
// no heap allocation once the value has held the most runs it will hold
// (one for a range within one folio, the common case, from the start):
//
//	var p pin.Pages
//	for ... {
//		if err := p.Pin(s, addr, n, pin.Write); err != nil { ... }
//		use(p.Bytes())
//		p.Release()
//	}
//
// Like a runtime.Pinner, a Pages belongs to one goroutine at a time: its
// methods must not run concurrently with each other (hand it over with a
// channel or a mutex), and it must not be copied once used.
type Pages struct {
	_      noCopy
	a      *folio.Arena
	pin    bool
	held   bool // between a successful take and Release; see Release
	flags  Flags
	addr   cow.Addr // the range asked for, for String
	length int
	runs   []run
	bytes  [][]byte

	// The first run and slice live here: a range within one folio, the
	// common case, needs nothing more.
	run0   [1]run
	bytes0 [1][]byte
}

// noCopy makes go vet's copylocks check report a copied Pages, whose runs
// may point into the original.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

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
	p := new(Pages)
	if err := p.take(s, addr, length, flags, true); err != nil {
		return nil, err
	}
	return p, nil
}

// Get takes plain references on the pages of [addr, addr+length)
// (FOLL_GET): nothing is unshared, Fork shares them as usual, but no write
// fault reuses a page while the reference is held.
func Get(s *cow.Space, addr cow.Addr, length int, flags Flags) (*Pages, error) {
	p := new(Pages)
	if err := p.take(s, addr, length, flags, false); err != nil {
		return nil, err
	}
	return p, nil
}

// Pin is the function Pin into p, which must hold nothing (a zero Pages,
// or one released): the pages are p's until p.Release. It allocates
// nothing once p has held as many runs before. On error p holds nothing.
// A p that still holds pages is ErrInvalid, and keeps them.
func (p *Pages) Pin(s *cow.Space, addr cow.Addr, length int, flags Flags) error {
	return p.take(s, addr, length, flags, true)
}

// Get is the function Get into p, as Pin is the function Pin.
func (p *Pages) Get(s *cow.Space, addr cow.Addr, length int, flags Flags) error {
	return p.take(s, addr, length, flags, false)
}

func (p *Pages) take(space *cow.Space, addr cow.Addr, length int, flags Flags, pin bool) error {
	s := (*mm.Space)(space)
	switch {
	case p.held:
		return fmt.Errorf("%w: %v still holds its pages: Release them first", cow.ErrInvalid, p)
	case !s.Valid():
		return fmt.Errorf("%w: a nil Space, or one not made by NewSpace or Fork", cow.ErrInvalid)
	case length <= 0:
		return fmt.Errorf("%w: length %d", cow.ErrInvalid, length)
	case flags&^allFlags != 0, flags&(FastOnly|SlowOnly) == FastOnly|SlowOnly:
		return fmt.Errorf("%w: flags %#x", cow.ErrInvalid, uint(flags))
	case uint64(addr) >= 1<<pte.VABits || uint64(length) > 1<<pte.VABits-uint64(addr):
		return fmt.Errorf("%w %#x", cow.ErrFault, uint64(addr))
	}
	want := mm.WantHold | mm.WantEach
	if flags&Write != 0 {
		want |= mm.WantWrite
	}
	if pin {
		want |= mm.WantExclusive | mm.WantPin
	}
	ps := uint64(s.PageSize())
	first := uint64(addr) &^ (ps - 1)
	total := int((uint64(addr) + uint64(length) - first + ps - 1) / ps)
	p.a, p.pin, p.flags, p.addr, p.length = s.Arena(), pin, flags, addr, length
	if p.runs == nil {
		p.runs = p.run0[:0]
	}
	// Held from here on, so that the error paths give back what was taken
	// with Release. Registered before anything is held: a Check from here
	// on counts what the runs hold as they are taken (in a lockless
	// section, or under the map lock, both of which Check waits for).
	p.held = true
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
				return fmt.Errorf("pin: %w", cow.ErrClosed)
			}
			return ErrFastFailed
		}
		if err := p.slow(s, mm.Addr(first+uint64(done)*ps), total-done, want); err != nil {
			p.Release()
			return err
		}
	}
	p.bytes = p.slices(uint64(addr)%ps, length, int(ps))
	return nil
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
// Pin) per page on (WantEach). The ledger counts them only where Check is
// exact about them (folio.ExactLedger); the zero page's, always.
func (p *Pages) hold(r mm.Run) {
	switch {
	case r.Zero:
		p.a.LedgerAdd(0, 0, 1) // the zero page outlives no arena
	case p.pin:
		if folio.ExactLedger {
			p.a.LedgerAdd(r.N, 0, 0)
		}
		p.a.FolioMarkHeld(r.Head) // quarantined when freed, in the debug build
	default:
		if folio.ExactLedger {
			p.a.LedgerAdd(0, r.N, 0)
		}
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
			if folio.ExactLedger {
				p.a.LedgerAdd(-r.n, 0, 0)
			}
		default:
			p.a.FolioPut(r.head, r.n)
			if folio.ExactLedger {
				p.a.LedgerAdd(0, -r.n, 0)
			}
		}
	}
	p.runs = p.runs[:0]
}

// slices builds Bytes: one slice per physically contiguous run, covering
// exactly [off, off+length) of the pages, in p's own array or in the one
// an earlier take grew.
func (p *Pages) slices(off uint64, length, ps int) [][]byte {
	out := p.bytes[:0]
	if cap(out) == 0 {
		out = p.bytes0[:0]
	}
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
	if !p.held {
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
	if p.a == nil {
		return "pin.Pages(empty)"
	}
	kind := "Get"
	if p.pin {
		kind = "Pin"
	}
	if !p.held {
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
// they were. It works after the space was closed; a second call is a no-op,
// and so is a call on a Pages that holds nothing. Bytes returns nil
// afterwards, and p may take other pages.
func (p *Pages) Release() {
	if p == nil || !p.held {
		return
	}
	p.held = false
	p.bytes = p.bytes[:0]
	if !folio.ExactLedger {
		untrack(p)
		p.undo()
		return
	}
	// The folio counts and the ledger change together, as Check sees them.
	sec := p.a.LedgerEnter()
	untrack(p)
	p.undo()
	p.a.LedgerExit(sec)
}
