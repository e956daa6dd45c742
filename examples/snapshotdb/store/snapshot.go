package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// Snapshot is a read-only view of a store at one instant, backed by a Fork
// of the store's space: taking it costs a Fork (microseconds), and the
// store's writes after it copy the pages they change, as fork(2) does.
// Nothing writes the snapshot's space, so its methods need no lock and are
// safe for concurrent use. Close it to give its memory back.
type Snapshot struct {
	st   *Store
	t    tables
	m    meta          // the header at the Fork
	fork time.Duration // how long the Fork took
	base cow.Stats     // the store's counters right after the Fork

	closeOnce sync.Once
	closeErr  error
}

// Snapshot returns a read-only view of the store as it is now.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	// The header lives in Go memory between Forks: write it to the meta
	// page so the child holds the whole state.
	if err := s.flushMeta(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	start := time.Now()
	child, err := s.sp.Fork()
	took := time.Since(start)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	sn := &Snapshot{st: s, t: s.t, m: s.m.clone(), fork: took, base: s.sp.Stats()}
	s.mu.Unlock()
	sn.t.sp = child
	s.ref()
	s.stats.forked(took)
	return sn, nil
}

// ForkLatency returns how long the Fork behind the snapshot took.
func (sn *Snapshot) ForkLatency() time.Duration { return sn.fork }

// Len returns the number of keys in the snapshot.
func (sn *Snapshot) Len() int { return int(sn.m.count) }

// Get returns a copy of the value stored under key, or ErrNotFound.
func (sn *Snapshot) Get(key []byte) ([]byte, error) { return sn.AppendGet(nil, key) }

// AppendGet appends the value stored under key to dst, or returns
// ErrNotFound.
func (sn *Snapshot) AppendGet(dst, key []byte) ([]byte, error) {
	if sn.t.sp.Closed() {
		return dst, ErrClosed
	}
	return sn.t.appendGet(dst, keyHash(sn.m.seed, key), key)
}

// Range calls fn for every key and value of the snapshot, in index order,
// until fn returns false. The slices are valid only during the call.
func (sn *Snapshot) Range(fn func(key, value []byte) bool) error {
	if sn.t.sp.Closed() {
		return ErrClosed
	}
	le := binary.LittleEndian
	var buf []byte
	const window = 4096 // slots per pass: 64 KiB of index
	for first := uint64(0); first < sn.m.slots; first += window {
		n := min(window, sn.m.slots-first)
		idx, err := viewOf(sn.t.sp, sn.t.index+cow.Addr(first*slotSize), n*slotSize, false)
		if err != nil {
			return err
		}
		for i := range n {
			b := idx.at(i * slotSize)
			ref := le.Uint64(b[8:])
			if ref == refEmpty || ref == refTomb {
				continue
			}
			size := classSizes[refClass(ref)]
			if uint64(cap(buf)) < size {
				buf = make([]byte, size)
			}
			item := buf[:size]
			if _, err := sn.t.sp.ReadAt(item, int64(sn.t.slab)+int64(refOff(ref))); err != nil {
				idx.release()
				return err
			}
			klen, vlen := uint64(le.Uint32(item)), uint64(le.Uint32(item[4:]))
			if itemHdr+klen+vlen > size {
				idx.release()
				return fmt.Errorf("%w: item at slab offset %d overruns its chunk", ErrCorrupt, refOff(ref))
			}
			if !fn(item[itemHdr:itemHdr+klen], item[itemHdr+klen:itemHdr+klen+vlen]) {
				idx.release()
				return nil
			}
		}
		idx.release()
	}
	return nil
}

// Close releases the snapshot: the pages only it held go back to the
// arena. Closing twice is a no-op.
func (sn *Snapshot) Close() error {
	sn.closeOnce.Do(func() {
		sn.closeErr = errorsJoin(sn.t.sp.Close(), sn.st.unref())
	})
	return sn.closeErr
}

// Range calls fn for every key and value of the store as it is at the
// call, until fn returns false: it iterates a snapshot, so fn may modify the
// store. The slices are valid only during the call.
func (s *Store) Range(fn func(key, value []byte) bool) error {
	sn, err := s.Snapshot()
	if err != nil {
		return err
	}
	defer sn.Close()
	return sn.Range(fn)
}
