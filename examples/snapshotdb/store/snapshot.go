package store

import (
	"io"
	"sync"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/snapshot"
)

// view reads a store's state from a space that nobody writes: a snapshot
// (a Fork), or a space being loaded. Everything comes from the space.
type view struct {
	sp         *cow.Space
	sb         superblock
	shardShift uint
	dicts      []dictState
}

// readView reads the superblock at root and every shard header.
func readView(sp *cow.Space, root cow.Addr) (view, error) {
	var b [supLen]byte
	if _, err := sp.ReadAt(b[:], int64(root)); err != nil {
		return view{}, err
	}
	sb, err := decodeSuper(b[:])
	if err != nil {
		return view{}, err
	}
	v := view{sp: sp, sb: sb, shardShift: 64 - uint(sb.shardBits), dicts: make([]dictState, 1<<sb.shardBits)}
	for i := range v.dicts {
		if v.dicts[i], err = readDict(mem{sp: sp}, sb.shards+cow.Addr(i*int(sb.pageSize))); err != nil {
			return view{}, err
		}
	}
	return v, nil
}

func (v *view) count() int {
	n := 0
	for i := range v.dicts {
		n += int(v.dicts[i].count)
	}
	return n
}

// walk calls fn with every record of dict d, whole, in bucket order,
// until fn returns false. The record is valid only during the call.
func walk(sp mem, d *dictState, fn func(rec *recHeader, record []byte) bool) error {
	var buckets [groupBuckets * 8]byte
	var buf []byte
	for ti := range 2 {
		t := d.t[ti]
		if ti == 1 && !d.rehashing() {
			break
		}
		first := uint64(0)
		if ti == 0 && d.rehashing() {
			first = d.rehashIdx
		}
		for i := first; i < t.size(); {
			k := min(groupBuckets, t.size()-i)
			if _, err := sp.ReadAt(buckets[:k*8], int64(t.addr)+int64(i*8)); err != nil {
				return err
			}
			for j := range k {
				p := leU64(buckets[j*8:])
				for steps := uint64(0); p != 0; steps++ {
					if steps > d.count {
						return corrupt("a bucket chain longer than the %d keys", d.count)
					}
					rec, b, err := readRecord(sp, p, buf)
					buf = b
					if err != nil {
						return err
					}
					if !fn(&rec, buf[:rec.len()]) {
						return nil
					}
					p = rec.next
				}
			}
			i += k
		}
	}
	return nil
}

// Snapshot is a read-only view of a store at one instant, backed by a Fork
// of the store's space: taking it costs the quiesce and a Fork
// (microseconds), and the store's writes after it copy the pages they
// change, as fork(2) does. Nothing writes the snapshot's space, so its
// methods need no lock and are safe for concurrent use. Close it to give
// its memory back.
type Snapshot struct {
	view
	st       *Store
	at       int64         // the store's clock at the Fork
	pause    time.Duration // how long the store's writers waited: quiesce and Fork
	fork     time.Duration // the Fork alone
	base     cow.Stats     // the store's counters right after the Fork
	dirtyAt  uint64        // the store's change count at the Fork
	closeErr error
	once     sync.Once
}

// Snapshot returns a read-only view of the store as it is now. It quiesces
// the store (every shard's lock, then the allocator's), forks its space and
// resumes: writers wait for the Fork only.
func (s *Store) Snapshot() (*Snapshot, error) {
	start := time.Now()
	resume := s.lockAll()
	if s.closed.Load() {
		s.unlockAll(resume)
		return nil, ErrClosed
	}
	dirty := s.dirtyLocked()
	forkStart := time.Now()
	child, err := s.sp.Fork()
	end := time.Now()
	base := s.sp.Stats()
	s.unlockAll(resume)
	if err != nil {
		return nil, err
	}
	v, err := readView(child, s.root)
	if err != nil {
		child.Close()
		return nil, err
	}
	s.ref()
	sn := &Snapshot{view: v, st: s, at: s.now(), pause: end.Sub(start), fork: end.Sub(forkStart), base: base, dirtyAt: dirty}
	s.stats.forked(sn.pause)
	return sn, nil
}

// ForkLatency returns how long the snapshot stopped the store's writers:
// the quiesce and the Fork.
func (sn *Snapshot) ForkLatency() time.Duration { return sn.pause }

// Len returns the number of keys in the snapshot.
func (sn *Snapshot) Len() int { return sn.count() }

// Get returns a copy of the value stored under key, or ErrNotFound.
func (sn *Snapshot) Get(key []byte) ([]byte, error) { return sn.AppendGet(nil, key) }

// AppendGet appends the value stored under key to dst, or returns
// ErrNotFound. A key past its TTL at the snapshot's instant is absent.
func (sn *Snapshot) AppendGet(dst, key []byte) ([]byte, error) {
	if sn.sp.Closed() {
		return dst, ErrClosed
	}
	h := keyHash(sn.sb.seed, key)
	f, ok, buf, err := lookup(mem{sp: sn.sp}, &sn.dicts[h>>sn.shardShift], h, key, nil, true)
	if err != nil || !ok || expired(&f.rec, sn.at) {
		return dst, errorsJoin(err, ErrNotFound)
	}
	return appendValue(mem{sp: sn.sp}, dst, &f, buf)
}

// Range calls fn for every key and value of the snapshot, shard by shard
// in bucket order, until fn returns false; keys past their TTL at the
// snapshot's instant are left out. The slices are valid only during the
// call.
func (sn *Snapshot) Range(fn func(key, value []byte) bool) error {
	return sn.RangeTTL(func(key, value []byte, _ int64) bool { return fn(key, value) })
}

// RangeTTL is Range, with each key's expire time (unix milliseconds, 0:
// none).
func (sn *Snapshot) RangeTTL(fn func(key, value []byte, expireAt int64) bool) error {
	if sn.sp.Closed() {
		return ErrClosed
	}
	for i := range sn.dicts {
		more := true
		err := walk(mem{sp: sn.sp}, &sn.dicts[i], func(rec *recHeader, b []byte) bool {
			if expired(rec, sn.at) {
				return true
			}
			k := recHdr + int(rec.klen)
			more = fn(b[recHdr:k], b[k:], rec.expire)
			return more
		})
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// WriteTo writes a full image of the snapshot to w, in the format of
// Store.Save (package snapshot's): Load reads it. It implements
// io.WriterTo.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	if sn.sp.Closed() {
		return 0, ErrClosed
	}
	info, err := snapshot.Save(w, sn.sp, snapshot.Options{})
	return info.Bytes, err
}

// Close releases the snapshot: the pages only it held go back to the
// arena. Closing twice is a no-op.
func (sn *Snapshot) Close() error {
	sn.once.Do(func() {
		sn.closeErr = errorsJoin(sn.sp.Close(), sn.st.unref())
	})
	return sn.closeErr
}

// Range calls fn for every key and value of the store as it is at the
// call, until fn returns false: it iterates a snapshot, so fn may modify
// the store. The slices are valid only during the call.
func (s *Store) Range(fn func(key, value []byte) bool) error {
	sn, err := s.Snapshot()
	if err != nil {
		return err
	}
	defer sn.Close()
	return sn.Range(fn)
}

// Keys calls fn for every key matching match (nil: every key) as the
// store is at the call, as Redis's KEYS: it iterates a snapshot, so the
// keys are those of one instant and the store's writers do not wait.
func (s *Store) Keys(match func(key []byte) bool, fn func(key []byte)) error {
	sn, err := s.Snapshot()
	if err != nil {
		return err
	}
	defer sn.Close()
	return sn.Range(func(k, _ []byte) bool {
		if match == nil || match(k) {
			fn(k)
		}
		return true
	})
}

// Scan is Redis's SCAN: it returns the keys of some buckets from cursor
// on (0 starts) and the cursor to continue from (0: done). A key present
// from the first call to the last is returned at least once, whatever the
// rehashes in between; a key may be returned more than once. It visits
// about count keys' worth of buckets, and holds one shard's lock at a
// time. The key passed to fn is valid only during the call.
//
// The cursor holds the shard in its low bits and dict.c's reverse-binary
// cursor of that shard's table above them.
func (s *Store) Scan(cursor uint64, count int, fn func(key []byte)) (uint64, error) {
	count = max(count, 1)
	bits := 64 - s.shardShift
	idx := int(cursor & uint64(len(s.shards)-1))
	v := cursor >> bits
	emitted, budget := 0, count*10
	var buf []byte
	for idx < len(s.shards) {
		sh := &s.shards[idx]
		sh.mu.RLock()
		if s.closed.Load() {
			sh.mu.RUnlock()
			return 0, ErrClosed
		}
		now := s.now()
		var err error
		for sh.d.count > 0 {
			v, err = scanStep(s.spMem, &sh.d, v, func(p uint64) error {
				rec, b, err := readRecord(s.spMem, p, buf)
				buf = b
				if err == nil && !expired(&rec, now) {
					fn(b[recHdr : recHdr+int(rec.klen)])
					emitted++
				}
				return err
			})
			budget--
			if err != nil || v == 0 || emitted >= count || budget <= 0 {
				break
			}
		}
		if sh.d.count == 0 {
			v = 0
		}
		sh.mu.RUnlock()
		if err != nil {
			return 0, err
		}
		if v != 0 {
			return v<<bits | uint64(idx), nil
		}
		idx++
		if emitted >= count || budget <= 0 {
			break
		}
	}
	if idx >= len(s.shards) {
		return 0, nil
	}
	return uint64(idx), nil
}
