package store

import (
	"io"
	"time"

	"github.com/anonfolio/anonfolio/snapshot"
)

// Saving is package snapshot's: Save takes a Fork of the store's space
// (with the store quiesced around it, so that the image holds a consistent
// store), streams the Fork's pages to the writer without copying them,
// drops each window of the Fork once written (so the store's later writes
// there reuse pages instead of copying them), and closes the Fork. The
// image format is the library's (go doc snapshot). A delta holds only the
// pages the store wrote since its previous successful save (or since the
// image it was loaded from); it names that image, and loads only onto it.

// retainFree bounds the free memory a save or a collapse leaves resident.
const retainFree = 16 << 20

// SaveOptions configure a save.
type SaveOptions struct {
	// Delta writes only what changed since the store's previous
	// successful save, or since the images it was loaded from
	// (snapshot.ErrNoBase if there is neither).
	Delta bool
}

// SaveInfo describes an image a save wrote.
type SaveInfo struct {
	snapshot.Info
	Keys int64 // keys in the store at the image's instant
}

// Save writes a full image of the store to w while the store goes on
// taking writes: the writers wait only for the quiesce and the Fork
// (microseconds). Only one save runs at a time (ErrSaveInProgress).
// Stats reports its progress, its duration and what it made the store
// copy.
func (s *Store) Save(w io.Writer) error {
	_, err := s.SaveWith(w, SaveOptions{})
	return err
}

// SaveDelta writes a delta: the pages the store changed since its previous
// successful save (or since the images Load gave it). Load it after the
// images it follows (LoadChain).
func (s *Store) SaveDelta(w io.Writer) error {
	_, err := s.SaveWith(w, SaveOptions{Delta: true})
	return err
}

// SaveWith is Save or SaveDelta, as o says, and describes the image.
func (s *Store) SaveWith(w io.Writer, o SaveOptions) (SaveInfo, error) {
	if !s.saving.CompareAndSwap(false, true) {
		return SaveInfo{}, ErrSaveInProgress
	}
	defer s.saving.Store(false)
	if s.closed.Load() {
		return SaveInfo{}, ErrClosed
	}
	s.saves.Add(1) // no table grows meanwhile: growing rewrites what the Fork shares
	defer s.saves.Add(-1)
	start := time.Now()
	var keys int64
	forked := false
	info, err := snapshot.Save(&progressWriter{w: w, s: s}, s.sp, snapshot.Options{
		Delta: o.Delta,
		// The quiesce: every shard's lock and the allocator's, for the
		// instant of the Fork. Nothing of the store is half changed then.
		Quiesce: func() func() {
			resume := s.lockAll()
			return func() {
				end := time.Now() // the Fork is done: resume is called right after it
				base, dirty := s.sp.Stats(), s.dirtyLocked()
				keys = s.lenLocked()
				s.unlockAll(resume)
				forked = true
				s.stats.forked(end.Sub(start))
				s.stats.saveStarted(start, keys, base, dirty)
			}
		},
	})
	s.sampleCow()
	s.sp.SplitDeferred() // the large folios the Fork left partly mapped
	// The pages the store copied meanwhile left their originals free (the
	// Fork held them): give them back to the kernel, as Redis's child
	// exits, or the process keeps them resident until they are reused.
	s.releaseFree()
	if !forked {
		s.stats.saveFailed(start, err)
		return SaveInfo{}, err
	}
	s.stats.saveDone(s.sp.Stats(), info.Bytes, err)
	return SaveInfo{Info: info, Keys: keys}, err
}

// progressWriter reports the bytes a save has written, and samples the
// memory the Fork holds, every 2 MiB or so.
type progressWriter struct {
	w    io.Writer
	s    *Store
	n    int64
	next int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.n >= p.next {
		p.next = p.n + 2<<20
		p.s.stats.progress(p.n)
		p.s.sampleCow()
	}
	return n, err
}

// releaseFree gives the arena's free memory back to the kernel, keeping
// retainFree (or 1/64 of the arena) for the allocations to come.
func (s *Store) releaseFree() {
	s.arena.Scavenge(min(s.arena.Stats().TotalPages*int64(s.ps)/64, retainFree))
}

// sampleCow records the memory the snapshots hold now, for the peak.
func (s *Store) sampleCow() {
	as := s.arena.Stats()
	used := as.TotalPages - as.FreePages
	s.stats.sample((used - s.sp.Stats().Resident) * int64(s.ps))
}

// lenLocked is Len for a caller holding every shard's lock.
//
// +checklocksignore: the caller holds every shard's lock.
func (s *Store) lenLocked() int64 {
	var n int64
	for i := range s.shards {
		n += int64(s.shards[i].d.count)
	}
	return n
}
