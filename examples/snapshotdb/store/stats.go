package store

import (
	"sync"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// Stats are the store's counters, with the persistence ones Redis's INFO
// reports (its names in brackets).
type Stats struct {
	Keys          int64         // keys in the store (dbsize)
	Expires       int64         // keys with a TTL (expires)
	Expired       uint64        // keys deleted for their TTL (expired_keys)
	AvgTTL        time.Duration // the active expiry's running average of the TTLs it sampled (avg_ttl)
	Dirty         uint64        // changes since the store was opened
	IndexSlots    int64         // buckets of the shards' tables, both tables of a rehash included
	Rehashing     int           // shards in the middle of a rehash
	SlabBytes     int64         // bytes of the allocator's blocks, in use and free, in the slabs it carved (slab.Stats InUse+Free)
	SlabFrag      float64       // the part of them that is free (slab.Stats Fragmentation)
	ResidentBytes int64         // memory the store's space maps (its RSS)
	Collapsed     uint64        // ranges the cron mapped huge again after saves (cow.Stats.Collapsed)
	ArenaBytes    int64         // memory in use in the arena: the store, plus what snapshots alone hold
	PageSize      int           // the arena's page size
	Forks         uint64        // Forks taken (Snapshot and Save)
	LastFork      time.Duration // how long the last one stopped the writers: the quiesce and the Fork (latest_fork_usec)

	SaveInProgress   bool          // a Save is running (rdb_bgsave_in_progress)
	CurrentSaveStart time.Time     // when it started
	CurrentSaveKeys  int64         // keys it saves (current_save_keys_total)
	CurrentSaveBytes int64         // bytes written so far
	Saves            uint64        // successful saves (rdb_saves)
	SaveErrors       uint64        // failed saves
	LastSave         time.Time     // end of the last successful save (rdb_last_save_time)
	LastSaveErr      error         // nil if the last save succeeded (rdb_last_bgsave_status)
	LastSaveDuration time.Duration // (rdb_last_bgsave_time_sec)
	LastSaveKeys     int64         // keys the last successful save wrote
	LastSaveBytes    int64         // bytes of its image
	DirtyAtSave      uint64        // Dirty at the Fork of the save running now
	DirtyAtLastSave  uint64        // Dirty at the Fork of the last successful save (rdb_changes_since_last_save is Dirty minus it)

	// Copy-on-write while a save runs. Copied counts the pages and bytes
	// the store copied because the snapshot shared them (cow.Stats WPCopy
	// and CopyBytes since the Fork): for the save running now (Current),
	// and for the last one (Last: rdb_last_cow_size). Peak is the most
	// memory the snapshots held at once beyond the store's own (pages the
	// store no longer maps), sampled after every 2 MiB written
	// (current_cow_peak) — smaller than Copied because the save gives each
	// window back as soon as it is written.
	CurrentCowPages uint64
	CurrentCowBytes uint64
	CurrentCowPeak  int64
	LastCowPages    uint64
	LastCowBytes    uint64
	LastCowPeak     int64
}

// statsState is the persistence bookkeeping.
type statsState struct {
	mu sync.Mutex
	// +checklocks:mu
	forks uint64
	// +checklocks:mu
	lastFork time.Duration

	// +checklocks:mu
	saving bool
	// +checklocks:mu
	saveStart time.Time
	// +checklocks:mu
	saveKeys int64
	// +checklocks:mu
	saveBytes int64
	// +checklocks:mu
	base cow.Stats // the store's counters right after the save's Fork
	// +checklocks:mu
	cowPeak int64 // the most memory the snapshots held during the save

	// +checklocks:mu
	saves uint64
	// +checklocks:mu
	saveErrors uint64
	// +checklocks:mu
	lastSave time.Time
	// +checklocks:mu
	lastErr error
	// +checklocks:mu
	lastDur time.Duration
	// +checklocks:mu
	lastKeys int64
	// +checklocks:mu
	lastBytes int64
	// +checklocks:mu
	lastCowPages uint64
	// +checklocks:mu
	lastCowBytes uint64
	// +checklocks:mu
	lastCowPeak int64
	// +checklocks:mu
	dirtyAtSave uint64
	// +checklocks:mu
	dirtyAtLastSave uint64
}

func (st *statsState) forked(d time.Duration) {
	st.mu.Lock()
	st.forks++
	st.lastFork = d
	st.mu.Unlock()
}

// saveStarted records a save whose Fork is taken: keys, base and dirty
// are the store's at the Fork.
func (st *statsState) saveStarted(start time.Time, keys int64, base cow.Stats, dirty uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.saving, st.saveStart, st.saveKeys, st.saveBytes = true, start, keys, 0
	st.base, st.cowPeak, st.dirtyAtSave = base, 0, dirty
}

// sample records the memory the snapshots hold now.
func (st *statsState) sample(held int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.saving {
		return
	}
	st.cowPeak = max(st.cowPeak, held)
}

func (st *statsState) saveFailed(start time.Time, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.saveErrors++
	st.lastErr, st.lastDur = err, time.Since(start)
}

func (st *statsState) saveDone(now cow.Stats, n int64, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.saving = false
	st.lastDur, st.lastErr = time.Since(st.saveStart), err
	st.lastCowPages, st.lastCowBytes = now.WPCopy-st.base.WPCopy, now.CopyBytes-st.base.CopyBytes
	st.lastCowPeak = st.cowPeak
	if err != nil {
		st.saveErrors++
		return
	}
	st.saves++
	st.lastSave, st.lastKeys, st.lastBytes = time.Now(), st.saveKeys, n
	st.dirtyAtLastSave = st.dirtyAtSave
}

// progress records the bytes a save has written.
func (st *statsState) progress(n int64) {
	st.mu.Lock()
	st.saveBytes = n
	st.mu.Unlock()
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	out := Stats{PageSize: s.ps}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		out.Keys += int64(sh.d.count)
		out.Expires += int64(sh.d.ttlLen)
		out.IndexSlots += int64(sh.d.t[0].size())
		if sh.d.rehashing() {
			out.IndexSlots += int64(sh.d.t[1].size())
			out.Rehashing++
		}
		out.Expired += sh.expired
		out.Dirty += sh.dirty
		sh.mu.RUnlock()
	}
	out.AvgTTL = time.Duration(s.avgTTL.Load()) * time.Millisecond
	if ss, err := s.slab.Load().a.Stats(); err == nil {
		out.SlabBytes, out.SlabFrag = ss.InUse+ss.Free, ss.Fragmentation
	}
	cs := s.sp.Stats()
	as := s.arena.Stats()
	out.ResidentBytes = cs.Resident * int64(s.ps)
	out.Collapsed = cs.Collapsed
	out.ArenaBytes = (as.TotalPages - as.FreePages) * int64(s.ps)

	st := &s.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	out.Forks, out.LastFork = st.forks, st.lastFork
	out.SaveInProgress = st.saving
	if st.saving {
		out.CurrentSaveStart, out.CurrentSaveKeys, out.CurrentSaveBytes = st.saveStart, st.saveKeys, st.saveBytes
		out.CurrentCowPages = cs.WPCopy - st.base.WPCopy
		out.CurrentCowBytes = cs.CopyBytes - st.base.CopyBytes
		out.CurrentCowPeak = max(st.cowPeak, out.ArenaBytes-out.ResidentBytes)
		out.DirtyAtSave = st.dirtyAtSave
	}
	out.Saves, out.SaveErrors = st.saves, st.saveErrors
	out.LastSave, out.LastSaveErr, out.LastSaveDuration = st.lastSave, st.lastErr, st.lastDur
	out.LastSaveKeys, out.LastSaveBytes = st.lastKeys, st.lastBytes
	out.LastCowPages, out.LastCowBytes, out.LastCowPeak = st.lastCowPages, st.lastCowBytes, st.lastCowPeak
	out.DirtyAtLastSave = st.dirtyAtLastSave
	return out
}

// Dirty returns the changes made since the store was opened (each key a
// command wrote counts one), for save points: compare with
// Stats().DirtyAtLastSave.
func (s *Store) Dirty() uint64 {
	var n uint64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += sh.dirty
		sh.mu.RUnlock()
	}
	return n
}

// DirtyAtLastSave returns Dirty as it was at the Fork of the last
// successful save (Stats().DirtyAtLastSave, without Stats' walk of the
// allocator): Dirty minus it is Redis's rdb_changes_since_last_save.
func (s *Store) DirtyAtLastSave() uint64 {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	return s.stats.dirtyAtLastSave
}

// dirtyLocked is Dirty for a caller holding every shard's lock.
//
// +checklocksignore: the caller holds every shard's lock.
func (s *Store) dirtyLocked() uint64 {
	var n uint64
	for i := range s.shards {
		n += s.shards[i].dirty
	}
	return n
}
