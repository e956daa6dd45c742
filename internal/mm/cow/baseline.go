package cow

import (
	"slices"
	"sync"
)

// A space's baseline is the image its contents were last made equal to:
// its last successful snapshot Save, or the image a Load gave it. Relative
// to it the space keeps what an incremental snapshot needs:
//
//   - the written marks of its entries (SoftDirty, see softdirty.go): the
//     pages whose contents may differ from the baseline's;
//   - the ranges whose contents it dropped since (Unmap, MapFixed,
//     DontNeed, both ends of a Remap): the resets, which a delta replays
//     before it writes the pages, since a dropped page leaves no entry to
//     mark;
//   - its regions, which an image lists whole.
//
// A Fork's child and a space that ResetTo made equal to another inherit the
// baseline, the marks (with the entries) and the resets: they describe the
// same contents relative to the same image. The engine only keeps these;
// the snapshot package decides what a baseline is (an image's identity and
// a digest of its regions, opaque here).

// Baseline names the image a space's marks and resets are relative to.
type Baseline struct {
	Image   [16]byte // the image's identity; all zero: none
	Regions uint64   // a digest of the regions the image lists
}

// Valid reports whether b names an image.
func (b Baseline) Valid() bool { return b.Image != [16]byte{} }

// Span is a range of pages: [Addr, Addr+Pages×page size).
type Span struct {
	Addr  Addr
	Pages int
}

// maxResets bounds the resets a space keeps: past it, it forgets them and
// its baseline (a delta then needs a full Save first) rather than grow
// without end.
const maxResets = 1 << 16

// tracking is a space's baseline state. Its fields change with the map lock
// held for writing, or for reading with mu held (a DontNeed's reset): mu
// guards them either way.
type tracking struct {
	mu sync.Mutex
	// +checklocks:mu
	base Baseline
	// resets are disjoint, sorted ranges (byte addresses [start, end)),
	// kept while base is valid or a snapshot is pending.
	// +checklocks:mu
	resets []span
	// pending is set from a snapshot Fork until its Commit or Abort: the
	// resets from its instant on are relative to the image it is writing,
	// which may become the baseline.
	// +checklocks:mu
	pending bool
	// epoch moves whenever the baseline state is replaced (ResetTo, a
	// Save's or a Load's commit): a snapshot in flight commits or rolls
	// back only if it did not.
	// +checklocks:mu
	epoch uint64

	// snapMu serialises the snapshot operations of the space (Save, Load):
	// each one's baseline follows the previous one's.
	snapMu sync.Mutex
}

// span is a byte range [start, end).
type span struct{ start, end Addr }

// noteReset records that the contents of [start, end) were dropped, if the
// space has a baseline to be relative to.
//
// Preconditions: mapLock is held (for reading suffices).
// +checklocksread:s.mapLock
func (s *Space) noteReset(start, end Addr) {
	t := &s.track
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.base.Valid() && !t.pending {
		return
	}
	t.resets = addSpan(t.resets, span{start, end})
	if len(t.resets) > maxResets {
		t.base, t.resets = Baseline{}, nil
		t.epoch++ // a snapshot in flight will not commit
	}
}

// addSpan adds r to the disjoint, sorted spans rs, merging what it
// overlaps or touches.
func addSpan(rs []span, r span) []span {
	i := slices.IndexFunc(rs, func(x span) bool { return x.end >= r.start })
	if i < 0 {
		return append(rs, r)
	}
	j := i
	for j < len(rs) && rs[j].start <= r.end {
		r.start, r.end = min(r.start, rs[j].start), max(r.end, rs[j].end)
		j++
	}
	return slices.Replace(rs, i, j, r)
}

// inheritTracking gives child the baseline state of s (Fork and ResetTo).
// While a snapshot of s is pending, s's marks are relative to an image
// that is not its baseline yet and may never be: then child gets none.
//
// +checklocksignore: mu of both, one after the other.
func (s *Space) inheritTracking(child *Space) {
	s.track.mu.Lock()
	base, resets := s.track.base, slices.Clone(s.track.resets)
	if s.track.pending {
		base, resets = Baseline{}, nil
	}
	s.track.mu.Unlock()
	t := &child.track
	t.mu.Lock()
	t.base, t.resets, t.pending = base, resets, false
	t.epoch++
	t.mu.Unlock()
}

// Baseline returns the space's baseline (not Valid if it has none).
func (s *Space) Baseline() Baseline {
	s.track.mu.Lock()
	defer s.track.mu.Unlock()
	return s.track.base
}

// LockSnapshots and UnlockSnapshots bracket a snapshot operation on the
// space (a Save of it, a Load into it): they run one at a time, so that
// each baseline follows the last.
//
// +checklocksignore: the lock is taken here and released by UnlockSnapshots.
func (s *Space) LockSnapshots() { s.track.snapMu.Lock() }

// UnlockSnapshots ends what LockSnapshots began.
//
// +checklocksignore: the lock was taken by LockSnapshots.
func (s *Space) UnlockSnapshots() { s.track.snapMu.Unlock() }

// Since is what a snapshot Fork took from the space at its instant: the
// pages marked written and the resets since the baseline, which it then
// cleared, and the baseline they are relative to. Commit or Abort it.
type Since struct {
	Base    Baseline
	Written []Span // runs of pages marked written, in address order
	Resets  []Span // ranges whose contents were dropped, in address order
	regions uint64 // the digest of the regions at the instant
	epoch   uint64 // the tracking epoch after the fork
}

// Commit makes image, the snapshot of the fork that returned since, the
// space's baseline, if nothing replaced its baseline state since that fork
// (then the marks and resets it kept are relative to the fork's instant, as
// the image is). It reports whether it did.
func (s *Space) Commit(since *Since, image [16]byte) bool {
	t := &s.track
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.epoch != since.epoch {
		return false
	}
	t.base, t.pending = Baseline{Image: image, Regions: since.regions}, false
	t.epoch++
	return true
}

// Abort puts back what the fork that returned since took, if nothing
// replaced the baseline state meanwhile: the written marks on the pages
// still mapped in its runs, and its resets. The next snapshot then carries
// them again, as if the failed one had not happened.
//
// The map lock is held across both halves: a Fork (which holds it for
// writing) must not come between the end of pending, which lets its child
// inherit the baseline, and the marks, which its child copies with the
// entries.
func (s *Space) Abort(since *Since) {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	t := &s.track
	t.mu.Lock()
	if t.epoch != since.epoch {
		t.mu.Unlock()
		return
	}
	t.pending = false
	if !t.base.Valid() {
		t.resets = nil // nothing to be relative to: no delta is possible
		t.mu.Unlock()
		return
	}
	for _, r := range since.Resets {
		t.resets = addSpan(t.resets, span{r.Addr, r.Addr + Addr(uint64(r.Pages)*s.ps)})
	}
	t.mu.Unlock()
	if s.closed.Load() {
		return
	}
	for _, r := range since.Written {
		s.markWritten(r.Addr, r.Addr+Addr(uint64(r.Pages)*s.ps))
	}
}

// takeSinceLocked empties the space's resets into since, with the
// baseline, and moves the epoch: the part of a snapshot Fork that is not
// in the page table.
//
// +checklocks:s.mapLock
func (s *Space) takeSinceLocked(since *Since) {
	t := &s.track
	t.mu.Lock()
	defer t.mu.Unlock()
	since.Base = t.base
	since.regions = s.regionsDigestLocked()
	for _, r := range t.resets {
		since.Resets = append(since.Resets, Span{r.start, int(uint64(r.end-r.start) / s.ps)})
	}
	t.resets, t.pending = nil, true
	t.epoch++
	since.epoch = t.epoch
}
