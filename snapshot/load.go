package snapshot

import (
	"errors"
	"fmt"
	"io"

	"github.com/anonfolio/anonfolio/cow"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
)

// Load reads an image from r into s: a full image into a space with no
// regions, or a delta onto a space exactly in the state it follows
// (ErrMismatch otherwise; see the package doc). It checks the image as it
// streams it into a Fork of s that only it sees, and makes that Fork s
// (ResetTo) only at the end, if s is still in that state: on any error s is
// unchanged. It reads r up to the image's last byte and no further.
// Afterwards s's baseline is the image, so the image's next delta (or a
// delta Save of s) follows on.
func Load(r io.Reader, s *cow.Space) (Info, error) {
	m := (*mm.Space)(s)
	switch {
	case !m.Valid():
		return Info{}, fmt.Errorf("snapshot: Load: %w: a nil Space, or one not made by NewSpace or Fork", cow.ErrInvalid)
	case r == nil:
		return Info{}, fmt.Errorf("snapshot: Load: %w: a nil reader", cow.ErrInvalid)
	}
	m.LockSnapshots()
	defer m.UnlockSnapshots()
	d := newDecoder(r)
	info, err := loadImage(d, m)
	info.Bytes = d.n
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMismatch) {
		err = fmt.Errorf("snapshot: Load: %w", err)
	}
	return info, err
}

// loadImage does Load's work.
func loadImage(d *decoder, m *mm.Space) (Info, error) {
	h, err := d.header()
	if err != nil {
		return Info{}, err
	}
	if h.pageSize != m.PageSize() {
		return Info{}, fmt.Errorf("%w: an image of %d-byte pages, a space of %d-byte pages", ErrMismatch, h.pageSize, m.PageSize())
	}
	info := Info{Delta: h.delta}
	var want mm.Baseline
	if h.delta {
		want.Image = h.base
	}
	if err := mismatch(m.AtBaseline(want), h); err != nil {
		return info, err
	}
	regions, err := d.regionsRecord()
	if err != nil {
		return info, err
	}
	info.Regions = len(regions)
	var resets []resetEntry
	if h.delta {
		if resets, err = d.resetsRecord(); err != nil {
			return info, err
		}
	}
	f, _, err := m.SnapshotFork(false)
	if err != nil {
		return info, err
	}
	defer f.Close()
	ap := &applier{f: f, ps: uint64(h.pageSize), want: regions, pipe: newHashPipe()}
	defer ap.pipe.wait() // before f.Close: the pipe reads f's pages
	if err := ap.regions(resets); err != nil {
		return info, err
	}
	for {
		rh, err := d.next(recPages)
		if err != nil {
			return info, err
		}
		if rh.typ == recEnd {
			break
		}
		if err := ap.pages(d, rh); err != nil {
			return info, err
		}
		info.Pages = int64(d.pages)
	}
	if err := ap.pipe.wait(); err != nil {
		return info, err
	}
	if err := d.endRecord(); err != nil {
		return info, err
	}
	if err := f.MarkClean(h.id); err != nil {
		return info, err
	}
	return info, mismatch(m.ResetToAt(f, want), h)
}

// mismatch turns the engine's "not at the baseline" into ErrMismatch.
func mismatch(err error, h header) error {
	if errors.Is(err, mm.ErrNotAtBaseline) {
		if h.delta {
			return fmt.Errorf("%w: a delta that follows image %x: %v", ErrMismatch, h.base, err)
		}
		return fmt.Errorf("%w: a full image: %v", ErrMismatch, err)
	}
	return err
}

// applier applies an image's regions and pages to a Load's Fork.
type applier struct {
	f       *mm.Space
	ps      uint64
	want    []regionEntry // the image's regions
	prevEnd uint64        // the end of the last pages record
	runs    []mm.PageRun
	pipe    *hashPipe // checks the large records' sums meanwhile
}

// regions makes the Fork's regions the image's: the resets dropped first
// (DontNeed), then what the image does not map unmapped, what it maps anew
// mapped, and protections and advice set where they differ.
func (ap *applier) regions(resets []resetEntry) error {
	f := ap.f
	cur := f.Regions()
	for _, z := range resets { // both sorted: one walk
		lo, hi := mm.Addr(z.addr), mm.Addr(z.addr+z.pages*ap.ps)
		for len(cur) > 0 && cur[0].End() <= lo {
			cur = cur[1:]
		}
		for _, r := range cur {
			if r.Addr >= hi {
				break
			}
			if a, b := max(lo, r.Addr), min(hi, r.End()); a < b {
				if err := f.Advise(a, int(b-a), mm.DontNeed); err != nil {
					return err
				}
			}
		}
	}
	cur = f.Regions()
	for _, p := range pieces(cur, ap.want) {
		var err error
		switch {
		case p.want == nil:
			err = f.Unmap(p.lo, int(p.hi-p.lo))
		case p.cur == nil:
			if err = f.MapFixed(p.lo, int(p.hi-p.lo), prot(p.want.prot)); err == nil {
				err = setAdvice(f, p.lo, p.hi, mm.Region{}, *p.want)
			}
		default:
			if prot(p.want.prot) != p.cur.Prot {
				err = f.Protect(p.lo, int(p.hi-p.lo), prot(p.want.prot))
			}
			if err == nil {
				err = setAdvice(f, p.lo, p.hi, *p.cur, *p.want)
			}
		}
		if err != nil {
			return err
		}
	}
	return ap.same()
}

// same checks that the Fork's regions are the image's now.
func (ap *applier) same() error {
	got := regionEntries(ap.f.Regions())
	if len(got) != len(ap.want) {
		return fmt.Errorf("snapshot: Load: the regions applied are %v, the image's %v", got, ap.want)
	}
	for i := range got {
		if got[i] != ap.want[i] {
			return fmt.Errorf("snapshot: Load: region %d applied is %+v, the image's %+v", i, got[i], ap.want[i])
		}
	}
	return nil
}

// setAdvice gives [lo, hi) the advice of want where cur's differs.
func setAdvice(f *mm.Space, lo, hi mm.Addr, cur mm.Region, want regionEntry) error {
	dontFork, wipe := want.advice&1 != 0, want.advice&2 != 0
	var advice []mm.Advice
	switch {
	case dontFork && !cur.DontFork:
		advice = append(advice, mm.DontFork)
	case !dontFork && cur.DontFork:
		advice = append(advice, mm.DoFork)
	}
	switch {
	case wipe && !cur.WipeOnFork:
		advice = append(advice, mm.WipeOnFork)
	case !wipe && cur.WipeOnFork:
		advice = append(advice, mm.KeepOnFork)
	}
	for _, a := range advice {
		if err := f.Advise(lo, int(hi-lo), a); err != nil {
			return err
		}
	}
	return nil
}

// prot decodes an R entry's protection.
func prot(p uint8) mm.Prot {
	var out mm.Prot
	if p&1 != 0 {
		out |= mm.ProtRead
	}
	if p&2 != 0 {
		out |= mm.ProtWrite
	}
	return out
}

// piece is a range where the Fork's current region and the image's are
// each one region or none.
type piece struct {
	lo, hi mm.Addr
	cur    *mm.Region
	want   *regionEntry
}

// pieces cuts the union of cur and want (each sorted and disjoint) into
// pieces, in address order.
func pieces(cur []mm.Region, want []regionEntry) []piece {
	var out []piece
	i, j := 0, 0
	at := mm.Addr(0)
	for i < len(cur) || j < len(want) {
		var c *mm.Region
		var w *regionEntry
		next := mm.Addr(vaLimit)
		if i < len(cur) {
			if r := &cur[i]; r.Addr <= at {
				c, next = r, min(next, r.End())
			} else {
				next = min(next, r.Addr)
			}
		}
		if j < len(want) {
			if r := &want[j]; mm.Addr(r.addr) <= at {
				w, next = r, min(next, mm.Addr(r.end()))
			} else {
				next = min(next, mm.Addr(r.addr))
			}
		}
		if c != nil || w != nil {
			out = append(out, piece{lo: at, hi: next, cur: c, want: w})
		}
		at = next
		if i < len(cur) && cur[i].End() <= at {
			i++
		}
		if j < len(want) && mm.Addr(want[j].end()) <= at {
			j++
		}
	}
	return out
}

// pages reads a pages record into the Fork, straight into the pages'
// memory, after checking that it lies inside the image's regions, after
// the previous one.
func (ap *applier) pages(d *decoder, rh recHeader) error {
	lo, hi := rh.addr, rh.addr+uint64(rh.n)*ap.ps
	if lo < ap.prevEnd || !ap.inside(lo, hi) {
		return corrupt("record %d: %d pages at %#x: overlapping the previous one or outside the image's regions", d.records, rh.n, rh.addr)
	}
	ap.prevEnd = hi
	raised, err := ap.raise(lo, hi)
	if err != nil {
		return err
	}
	// Straight into the pages, which are not zeroed (nor copied) first:
	// the record overwrites them whole, and only this Load sees the Fork.
	ap.runs, err = ap.f.WritablePages(mm.Addr(lo), int(hi-lo), ap.runs[:0])
	if err != nil {
		return err
	}
	a := ap.f.Arena()
	if hi-lo >= asyncMin {
		parts := make([][]byte, len(ap.runs))
		for i, r := range ap.runs {
			parts[i] = a.PageBytes(r.PFN, r.Pages)
		}
		err = d.intoAsync(parts, ap.pipe)
	} else {
		for _, r := range ap.runs {
			if err = d.into(a.PageBytes(r.PFN, r.Pages)); err != nil {
				break
			}
		}
		if err == nil {
			err = d.check()
		}
	}
	if err == nil {
		err = ap.restore(raised)
	}
	d.pages += uint64(rh.n)
	return err
}

// inside reports whether the image's regions cover [lo, hi).
func (ap *applier) inside(lo, hi uint64) bool {
	for _, r := range ap.want {
		if r.end() <= lo {
			continue
		}
		if r.addr > lo {
			return false
		}
		lo = r.end()
		if lo >= hi {
			return true
		}
	}
	return false
}

// raise makes the parts of [lo, hi) whose regions are not writable
// writable for the pages record, and returns them with their protection.
func (ap *applier) raise(lo, hi uint64) ([]regionEntry, error) {
	var raised []regionEntry
	for _, r := range ap.want {
		a, b := max(lo, r.addr), min(hi, r.end())
		if a >= b || r.prot&2 != 0 {
			continue
		}
		if err := ap.f.Protect(mm.Addr(a), int(b-a), mm.ProtRead|mm.ProtWrite); err != nil {
			return raised, err
		}
		raised = append(raised, regionEntry{addr: a, length: b - a, prot: r.prot})
	}
	return raised, nil
}

// restore puts back the protections raise lifted.
func (ap *applier) restore(raised []regionEntry) error {
	for _, r := range raised {
		if err := ap.f.Protect(mm.Addr(r.addr), int(r.length), prot(r.prot)); err != nil {
			return err
		}
	}
	return nil
}
