package cow

import (
	"fmt"

	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
)

// ResetTo makes s what snap is: snap's regions (with their protections and
// advice) and snap's contents; snap does not change. It is the reset of a
// snapshot fuzzer's or a sandbox's loop: fork once, run, reset, run again.
//
//	snap, _ := s.Fork() // the pristine state
//	for input := range inputs {
//		run(s, input)
//		s.ResetTo(snap) // back to the pristine state
//	}
//
// The cost grows with what s changed since it was forked from snap, not
// with its size: each 2 MiB range (with 4 KiB pages) whose page-table page
// s still shares with snap is kept as it is, and each other one is dropped
// and shares snap's again, as a Fork shares it. No page is copied, except
// the pages of snap that are pinned, which Fork copies too. Out of memory
// for those, ResetTo returns folio.ErrNoMemory and s is unchanged.
//
// s also takes snap's baseline: a delta snapshot.Save of s afterwards is
// relative to what a delta of snap would be. Both must allocate from the
// same arena (ErrInvalid otherwise); ResetTo(nil) is ErrInvalid, a closed
// s or snap ErrClosed; s.ResetTo(s) changes nothing. Accesses to s in
// flight finish first; accesses after it see snap's contents.
func (s *Space) ResetTo(snap *Space) error {
	m, err := s.m()
	if err != nil {
		return err
	}
	if !(*mm.Space)(snap).Valid() {
		return fmt.Errorf("%w: ResetTo(nil), or to a Space not made by NewSpace or Fork", ErrInvalid)
	}
	return m.ResetTo((*mm.Space)(snap))
}

// Region describes one region of a space, as a line of /proc/self/maps
// does.
type Region struct {
	Addr       Addr // first address
	Length     int  // bytes, a multiple of the page size
	Prot       Prot
	DontFork   bool // advised DontFork: a Fork's child does not inherit it
	WipeOnFork bool // advised WipeOnFork: a Fork's child inherits it empty
}

// End returns the address just past the region.
func (r Region) End() Addr { return r.Addr + Addr(r.Length) }

// String formats the region like a line of /proc/self/maps:
// "0x100000000-0x100200000 rw dontfork".
func (r Region) String() string { return r.mm().String() }

func (r Region) mm() mm.Region {
	return mm.Region{Addr: mm.Addr(r.Addr), Length: r.Length, Prot: mm.Prot(r.Prot), DontFork: r.DontFork, WipeOnFork: r.WipeOnFork}
}

// Regions returns the space's regions in address order, as
// /proc/self/maps lists a process's. Adjacent regions always differ in
// protection or advice (equal neighbours are one region). A closed space
// has none.
func (s *Space) Regions() []Region {
	m, err := s.m()
	if err != nil {
		return nil
	}
	rs := m.Regions()
	out := make([]Region, len(rs))
	for i, r := range rs {
		out[i] = Region{Addr: Addr(r.Addr), Length: r.Length, Prot: Prot(r.Prot), DontFork: r.DontFork, WipeOnFork: r.WipeOnFork}
	}
	return out
}
