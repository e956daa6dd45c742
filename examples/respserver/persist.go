package main

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// bgsaveRetry: after a failed background save, save points wait this long
// before trying again (CONFIG_BGSAVE_RETRY_DELAY).
const bgsaveRetry = 5 * time.Second

var errBgsaveRunning = errors.New("ERR Background save already in progress")

// persistence is the state of saving: one save at a time, foreground
// (SAVE, the final save) or background (BGSAVE, save points).
type persistence struct {
	mu sync.Mutex
	// +checklocks:mu
	bgsaving bool
	// +checklocks:mu
	scheduled bool // BGSAVE SCHEDULE: start one when the running one ends
	// +checklocks:mu
	lastSave time.Time // the last successful save, or the start (LASTSAVE)
	// +checklocks:mu
	lastTry time.Time // the start of the last background save
	// +checklocks:mu
	lastOK bool // the last background save succeeded
	// +checklocks:mu
	loadedKeys int64
	// chain is where the saves go: the dump file, or with save-delta a
	// full image and its deltas (store.Chain). It is made again when dir
	// or dbfilename change.
	// +checklocks:mu
	chain *store.Chain

	wg sync.WaitGroup // the background save
}

func (p *persistence) init(start time.Time) {
	p.mu.Lock()
	p.lastSave, p.lastOK = start, true
	p.mu.Unlock()
}

// writeImage saves the store: the one place a save happens. Without
// save-delta it writes the dump file (dbfilename) whole; with it, a delta
// of the pages written since the previous save, after the chain's full
// image (see store.Chain and the README's Persistence).
func (s *server) writeImage() error {
	if s.beforeSave != nil {
		s.beforeSave()
	}
	info, err := s.currentChain().Save(s.st, s.cfg.deltas())
	if err == nil {
		kind := "full image"
		if info.Delta {
			kind = "delta"
		}
		s.logf("saved a %s: %d keys, %d pages, %d bytes", kind, info.Keys, info.Pages, info.Bytes)
	}
	return err
}

// currentChain returns the chain of the configured dir and dbfilename.
func (s *server) currentChain() *store.Chain {
	dir, name := s.cfg.chainFiles()
	s.persist.mu.Lock()
	defer s.persist.mu.Unlock()
	if c := s.persist.chain; c == nil || c.Dir != dir || c.Name != name {
		s.persist.chain = &store.Chain{Dir: dir, Name: name}
	}
	return s.persist.chain
}

// setChain makes c (the chain the store was loaded from) the saves' chain.
func (s *server) setChain(c *store.Chain) {
	s.persist.mu.Lock()
	s.persist.chain = c
	s.persist.mu.Unlock()
}

// saveNow is SAVE: a save in the foreground (the store goes on serving the
// other connections meanwhile; only this one waits).
func (s *server) saveNow() error {
	s.persist.mu.Lock()
	if s.persist.bgsaving {
		s.persist.mu.Unlock()
		return errBgsaveRunning
	}
	s.persist.bgsaving = true // no background save meanwhile
	s.persist.mu.Unlock()
	err := s.writeImage()
	s.persist.mu.Lock()
	s.persist.bgsaving = false
	if err == nil {
		s.persist.lastSave = time.Now()
	}
	s.persist.mu.Unlock()
	return err
}

// bgsave starts a background save. With schedule, one already running
// makes it start after that one instead of failing.
func (s *server) bgsave(schedule bool) (string, error) {
	s.persist.mu.Lock()
	defer s.persist.mu.Unlock()
	if s.persist.bgsaving {
		if schedule {
			s.persist.scheduled = true
			return "Background saving scheduled", nil
		}
		return "", errBgsaveRunning
	}
	s.startBgsave()
	return "Background saving started", nil
}

// startBgsave starts the background save.
//
// +checklocks:s.persist.mu
func (s *server) startBgsave() {
	s.persist.bgsaving, s.persist.scheduled, s.persist.lastTry = true, false, time.Now()
	s.persist.wg.Add(1)
	go func() {
		defer s.persist.wg.Done()
		err := s.writeImage()
		if err != nil {
			s.logf("background save: %v", err)
		} else {
			s.logf("background saving terminated with success")
		}
		s.persist.mu.Lock()
		defer s.persist.mu.Unlock()
		s.persist.bgsaving, s.persist.lastOK = false, err == nil
		if err == nil {
			s.persist.lastSave = time.Now()
		}
		if s.persist.scheduled && !s.isClosed() {
			s.startBgsave()
		}
	}()
}

// checkSavePoints starts a background save when a save point is reached,
// as Redis's serverCron: enough changes since the last save and enough
// time since it; after a failure, not before bgsaveRetry.
func (s *server) checkSavePoints() {
	points := s.cfg.savePoints()
	if len(points) == 0 {
		return
	}
	changes := s.st.Dirty() - s.st.DirtyAtLastSave()
	s.persist.mu.Lock()
	defer s.persist.mu.Unlock()
	if s.persist.bgsaving {
		return
	}
	if s.persist.scheduled {
		s.startBgsave()
		return
	}
	now := time.Now()
	for _, p := range points {
		if changes >= p.changes && now.Sub(s.persist.lastSave) > time.Duration(p.seconds)*time.Second &&
			(s.persist.lastOK || now.Sub(s.persist.lastTry) > bgsaveRetry) {
			s.logf("%d changes in %d seconds. Saving...", p.changes, p.seconds)
			s.startBgsave()
			return
		}
	}
}

// finalSave is the save at shutdown, if save points are configured (or
// force): it waits for a background save, then saves in the foreground.
func (s *server) finalSave(force bool) error {
	if !force && len(s.cfg.savePoints()) == 0 {
		return nil
	}
	s.persist.mu.Lock()
	s.persist.scheduled = false
	s.persist.mu.Unlock()
	s.persist.wg.Wait()
	s.logf("saving the final image before exiting")
	err := s.saveNow()
	if errors.Is(err, errBgsaveRunning) { // a save point fired meanwhile
		s.persist.wg.Wait()
		err = s.saveNow()
	}
	return err
}

// setLoaded records the keys the image loaded at start held.
func (s *server) setLoaded(keys int) {
	s.persist.mu.Lock()
	s.persist.loadedKeys = int64(keys)
	s.persist.mu.Unlock()
}

// loadImage loads the store from the chain's manifest and files (a full
// image and its deltas), or else from the dump file alone, if there is
// one; else it opens an empty store. A broken chain is an error.
func loadImage(c *store.Chain, opts store.Options) (*store.Store, bool, error) {
	st, err := c.Load(opts)
	if errors.Is(err, os.ErrNotExist) {
		st, err = store.Open(opts)
		return st, false, err
	}
	return st, err == nil, err
}
