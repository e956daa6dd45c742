package cow

import (
	"errors"
	"fmt"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// A snapshot's Fork: what package snapshot saves from and loads into. It is
// Fork with two differences. Every region comes whole, whatever its advice
// (an image is of the space, not of what a child would inherit; the advice
// is kept and travels in the image). And with take, the same critical
// section (map lock held for writing, lockless paths quiesced) collects and
// clears the written marks and the resets: the delta's contents and the
// snapshot's instant are one and the same.

// ErrNotAtBaseline: the space is not in the state a snapshot operation
// expects (not at the baseline it names, changed since, or not empty).
var ErrNotAtBaseline = errors.New("cow: the space is not at the expected baseline")

// SnapshotFork returns a copy-on-write snapshot of every region of s, as
// Fork does but whatever the regions' advice. With take it also returns
// what changed since s's baseline (the runs of pages marked written and the
// resets), taken from s atomically with the fork: s's marks are cleared
// (but on pinned folios) and its resets emptied. Commit or Abort the Since
// on s once the snapshot is written or has failed.
func (s *Space) SnapshotFork(take bool) (*Space, *Since, error) {
	child, since, err := s.snapshotFork(take)
	if errors.Is(err, folio.ErrNoMemory) {
		err = s.noMemory(err, "a snapshot's Fork, copying the pages of a pinned folio")
	}
	if err != nil {
		if child != nil {
			child.Close() // with the parent's map lock dropped: see Fork
		}
		return nil, nil, err
	}
	return child, since, nil
}

func (s *Space) snapshotFork(take bool) (*Space, *Since, error) {
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return nil, nil, err
	}
	child, err := newSpace(s.a, s.orders, s.copyUnit)
	if err != nil {
		return nil, nil, err
	}
	s.quiesceLocked()
	defer s.unquiesce()
	testhook.Run(testhook.ForkBeforeCopy)
	if err := s.copyRegionsLocked(child, true); err != nil {
		return child, nil, err
	}
	if !take {
		return child, nil, nil
	}
	// After the copy, which cannot fail any more: a failed fork leaves the
	// marks as they were.
	since := &Since{}
	since.Written = s.takeWrittenLocked(child, nil)
	s.takeSinceLocked(since)
	return child, since, nil
}

// MarkClean makes the space's contents its baseline, the image named
// image: every written mark is cleared (but on pinned folios) and the
// resets forgotten. A Load calls it on the space it built, before that
// space replaces its target.
func (s *Space) MarkClean(image [16]byte) error {
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return err
	}
	s.quiesceLocked()
	defer s.unquiesce()
	s.takeWrittenLocked(nil, nil)
	t := &s.track
	t.mu.Lock()
	t.base = Baseline{Image: image, Regions: s.regionsDigestLocked()}
	t.resets, t.pending = nil, false
	t.epoch++
	t.mu.Unlock()
	return nil
}

// AtBaseline returns nil if the space is exactly at baseline want: its
// baseline is want, and since then nothing was written (no mark), dropped
// (no reset) or changed in its regions. With want not Valid, it returns nil
// if the space has no regions. Otherwise it wraps ErrNotAtBaseline with
// what differs.
func (s *Space) AtBaseline(want Baseline) error {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	if s.closed.Load() {
		return closedErr()
	}
	return s.atBaselineLocked(want)
}

// atBaselineLocked is AtBaseline with the map lock held.
//
// +checklocksread:s.mapLock
func (s *Space) atBaselineLocked(want Baseline) error {
	if !want.Valid() {
		if len(s.regions) > 0 {
			return fmt.Errorf("%w: it has %d regions, where an empty space is expected", ErrNotAtBaseline, len(s.regions))
		}
		return nil
	}
	t := &s.track
	t.mu.Lock()
	base, resets := t.base, len(t.resets)
	t.mu.Unlock()
	switch {
	case !base.Valid():
		return fmt.Errorf("%w: it has no baseline (no Save or Load since it was made, or a ResetTo or too many resets forgot it)", ErrNotAtBaseline)
	case base.Image != want.Image:
		return fmt.Errorf("%w: its baseline is image %x, not %x", ErrNotAtBaseline, base.Image, want.Image)
	case resets > 0:
		return fmt.Errorf("%w: %d ranges were unmapped or dropped since its baseline", ErrNotAtBaseline, resets)
	case s.regionsDigestLocked() != base.Regions:
		return fmt.Errorf("%w: its regions changed since its baseline", ErrNotAtBaseline)
	case s.anyWrittenTableLocked():
		return fmt.Errorf("%w: pages were written since its baseline", ErrNotAtBaseline)
	}
	return nil
}

// Discard unmaps [addr, addr+length) of a space that only its owner uses
// (a snapshot's Fork, as it streams: drop-behind). The space is quiesced
// for it, so that a leaf it shares is left to the other users at the cost
// of a Close, not of an Unmap (see wrProtectLeft).
func (s *Space) Discard(addr Addr, length int) error { return s.unmap(addr, length, true) }
