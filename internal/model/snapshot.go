package model

import (
	"fmt"
	"slices"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/snapshot"
)

// The model of package snapshot and of Space.ResetTo, which the library
// follows as:
//
//   - ResetTo gives s a copy of every page and region of snap (advice
//     included: it is not a Fork), and snap's base; pins on s's pages keep
//     them, and s no longer sees them.
//   - A Save's image is a copy of every page and region (advice ignored:
//     DontFork and WipeOnFork regions come whole). A delta Save needs a
//     base: a successful Save or Load of the space, inherited by a Fork's
//     child and taken by ResetTo (ErrNoBase otherwise); ErrClosed comes
//     first.

// Clone returns a copy of every page and region of s, whatever their
// advice: what an image of s holds.
func (s *Space) Clone() *Space {
	c := NewSpace(int(s.ps))
	c.based = s.based
	for p, e := range s.entries {
		ce := &entry{prot: e.prot, flags: e.flags}
		if e.page != nil && e.page.data != nil {
			ce.page = &Page{data: slices.Clone(e.page.data)}
		}
		c.entries[p] = ce
	}
	return c
}

// ResetTo makes s a copy of snap, with the library's errors in its order:
// ErrInvalid for a nil snap, nothing for s itself (ErrClosed if closed),
// then ErrClosed for either closed.
func (s *Space) ResetTo(snap *Space) error {
	switch {
	case snap == nil:
		return invalid("ResetTo(nil)")
	case snap == s && s.closed:
		return cow.ErrClosed
	case snap == s:
		return nil
	case s.closed || snap.closed:
		return cow.ErrClosed
	}
	c := snap.Clone()
	s.entries, s.based = c.entries, c.based
	return nil
}

// CheckSave predicts a Save's error.
func (s *Space) CheckSave(delta bool) error {
	switch {
	case s.closed:
		return cow.ErrClosed
	case delta && !s.based:
		return snapshot.ErrNoBase
	}
	return nil
}

// Saved records a successful Save or Load: the space has a base.
func (s *Space) Saved() { s.based = true }

// Based reports whether the space has a base for a delta Save.
func (s *Space) Based() bool { return s.based }

// Regions returns the regions as the library lists them: maximal runs of
// pages with the same protection and advice.
func (s *Space) Regions() []cow.Region {
	pages := make([]uint64, 0, len(s.entries))
	for p := range s.entries {
		pages = append(pages, p)
	}
	slices.Sort(pages)
	var out []cow.Region
	for _, p := range pages {
		e := s.entries[p]
		addr := cow.Addr(p * s.ps)
		r := cow.Region{Addr: addr, Length: int(s.ps), Prot: e.prot, DontFork: e.flags&dontFork != 0, WipeOnFork: e.flags&wipeOnFork != 0}
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.End() == addr && last.Prot == r.Prot && last.DontFork == r.DontFork && last.WipeOnFork == r.WipeOnFork {
				last.Length += int(s.ps)
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// Page returns the contents of the page at addr as the model holds them
// (nil: zero) and whether it is mapped, whatever its protection.
func (s *Space) Page(addr cow.Addr) ([]byte, bool) {
	e := s.entries[uint64(addr)/s.ps]
	if e == nil {
		return nil, false
	}
	if e.page == nil {
		return nil, true
	}
	return e.page.data, true
}

// String describes the space's regions, for failures.
func (s *Space) String() string { return fmt.Sprint(s.Regions()) }
