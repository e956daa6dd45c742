package store

import (
	"math"
	"strconv"
	"unsafe"
)

// The string commands of Redis, each atomic: a command holds the lock of
// its key's shard (or, for several keys, of each of their shards, taken in
// index order) from its lookup to its last write. A key past its TTL is
// absent to every command; the writers delete it when they meet it.

// SetOptions are SET's options.
type SetOptions struct {
	IfAbsent  bool  // NX: only if the key does not exist
	IfPresent bool  // XX: only if it exists
	ExpireAt  int64 // unix milliseconds; 0: no TTL (the key loses any it had unless KeepTTL)
	KeepTTL   bool  // KEEPTTL: keep the key's TTL
	Get       bool  // GET: return the old value
}

// ExpireCond is EXPIRE's conditions, a set of flags; all must hold.
type ExpireCond uint8

const (
	ExpireNX ExpireCond = 1 << iota // only if the key has no TTL
	ExpireXX                        // only if it has one
	ExpireGT                        // only if the new one is later (no TTL counts as infinite)
	ExpireLT                        // only if the new one is earlier

	ExpireAlways ExpireCond = 0 // no condition
)

// expired reports whether a record is past its TTL at now.
func expired(rec *recHeader, now int64) bool { return rec.expire != 0 && rec.expire <= now }

// checkKV rejects keys and values over the limits.
func checkKV(key, value []byte) error {
	if len(key) > MaxKeyLen || len(value) > MaxValueLen {
		return tooLarge(len(key), len(value))
	}
	return nil
}

// sameArray reports whether a and b start at the same address.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// appendValue appends the value of the record f found to dst. buf holds
// what lookup read (the whole record, unless it is large).
func appendValue(sp mem, dst []byte, f *hit, buf []byte) ([]byte, error) {
	k, v := int(f.rec.klen), int(f.rec.vlen)
	if f.tag == 0 { // large: read the value now
		n := len(dst)
		dst = append(dst, make([]byte, v)...)
		_, err := sp.ReadAt(dst[n:], int64(f.addr)+int64(recHdr+k))
		return dst, err
	}
	return append(dst, buf[recHdr+k:recHdr+k+v]...), nil
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) { return s.AppendGet(nil, key) }

// AppendGet appends the value stored under key to dst, or returns
// ErrNotFound (unwrapped). With a dst of enough spare capacity it does
// not allocate: it reads the record straight into that room.
func (s *Store) AppendGet(dst, key []byte) ([]byte, error) { return s.appendGet(s.spMem, dst, key) }

// appendGet is AppendGet, reading through m.
func (s *Store) appendGet(m mem, dst, key []byte) ([]byte, error) {
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.RLock()
	if s.closed.Load() {
		sh.mu.RUnlock()
		return dst, ErrClosed
	}
	spare := dst[len(dst):cap(dst)]
	f, ok, buf, err := lookup(m, &sh.d, h, key, spare, true)
	if err != nil || !ok {
		sh.mu.RUnlock()
		return dst, errorsJoin(err, ErrNotFound)
	}
	if expired(&f.rec, s.now()) {
		sh.mu.RUnlock()
		s.expireKey(h, key)
		return dst, ErrNotFound
	}
	if f.tag != 0 && sameArray(buf, spare) { // read into dst's room: move the value down
		k, v := int(f.rec.klen), int(f.rec.vlen)
		out := dst[:len(dst)+v]
		copy(out[len(dst):], buf[recHdr+k:recHdr+k+v])
		sh.mu.RUnlock()
		return out, nil
	}
	dst, err = appendValue(m, dst, &f, buf)
	sh.mu.RUnlock()
	return dst, err
}

// expireKey deletes key if it is past its TTL: a reader met it so.
func (s *Store) expireKey(h uint64, key []byte) {
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.closed.Load() {
		return
	}
	f, ok, buf, err := lookup(sh.mem, &sh.d, h, key, sh.rbuf, false)
	sh.rbuf = buf
	if err == nil && ok && expired(&f.rec, s.now()) {
		if sh.remove(&f) == nil {
			sh.expired++
		}
	}
}

// find is a writer's lookup: it takes a rehash step first (dict.c's
// _dictRehashStep) and deletes the key if it is past its TTL, reporting it
// absent. With whole, sh.rbuf holds the record (unless large).
//
// +checklocks:sh.mu
func (s *Store) find(sh *shard, h uint64, key []byte, whole bool) (hit, bool, error) {
	if s.closed.Load() {
		return hit{}, false, ErrClosed
	}
	if sh.d.rehashing() {
		if err := sh.rehashStep(1); err != nil {
			return hit{}, false, err
		}
	}
	f, ok, buf, err := lookup(sh.mem, &sh.d, h, key, sh.rbuf, whole)
	sh.rbuf = buf
	if err != nil || !ok {
		return f, false, err
	}
	if expired(&f.rec, s.now()) {
		if err := sh.remove(&f); err != nil {
			return f, false, err
		}
		sh.expired++
		return f, false, nil
	}
	return f, true, nil
}

// Put stores value under key, replacing what was there and its TTL.
func (s *Store) Put(key, value []byte) error {
	_, _, _, err := s.Set(nil, key, value, SetOptions{})
	return err
}

// Set stores value under key as Redis's SET does with o. It reports
// whether the key existed and whether the value was stored; with o.Get,
// the old value is appended to dst and returned. An ExpireAt already past
// deletes the key (it is stored and expires at once).
func (s *Store) Set(dst, key, value []byte, o SetOptions) (old []byte, existed, stored bool, err error) {
	if err := checkKV(key, value); err != nil {
		return dst, false, false, err
	}
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f, ok, err := s.find(sh, h, key, o.Get)
	if err != nil {
		return dst, false, false, err
	}
	old = dst
	if o.Get && ok {
		if old, err = appendValue(sh.mem, dst, &f, sh.rbuf); err != nil {
			return dst, ok, false, err
		}
	}
	if o.IfAbsent && ok || o.IfPresent && !ok {
		return old, ok, false, nil
	}
	return old, ok, true, s.store(sh, h, &f, ok, key, value, o.ExpireAt, o.KeepTTL)
}

// store writes value under key: an update of f if found, else an insert.
//
// +checklocks:sh.mu
func (s *Store) store(sh *shard, h uint64, f *hit, found bool, key, value []byte, expireAt int64, keepTTL bool) error {
	if keepTTL && found {
		expireAt = f.rec.expire
	}
	switch {
	case expireAt != 0 && expireAt <= s.now(): // already expired
		if found {
			return sh.remove(f)
		}
		return nil
	case found:
		return sh.update(f, key, value, expireAt)
	}
	return sh.insert(h, key, value, expireAt, s.saves.Load() == 0)
}

// GetDel appends the value of key to dst and deletes the key; found is
// false if there was none.
func (s *Store) GetDel(dst, key []byte) (value []byte, found bool, err error) {
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f, ok, err := s.find(sh, h, key, true)
	if err != nil || !ok {
		return dst, false, err
	}
	if value, err = appendValue(sh.mem, dst, &f, sh.rbuf); err != nil {
		return dst, false, err
	}
	return value, true, sh.remove(&f)
}

// Delete removes key, reporting whether it was there.
func (s *Store) Delete(key []byte) (bool, error) {
	n, err := s.DeleteKeys([][]byte{key})
	return n == 1, err
}

// DeleteKeys removes keys, atomically, and returns how many there were.
func (s *Store) DeleteKeys(keys [][]byte) (int, error) {
	return s.eachKey(keys, true, s.deleteOne)
}

// deleteOne deletes key, reporting 1 if it was there.
//
// +checklocksignore: eachKey holds sh.mu for writing.
func (s *Store) deleteOne(sh *shard, h uint64, key []byte) (int, error) {
	f, ok, err := s.find(sh, h, key, false)
	if err != nil || !ok {
		return 0, err
	}
	return 1, sh.remove(&f)
}

// Exists counts which of keys exist, atomically (a key named twice counts
// twice, as in Redis).
func (s *Store) Exists(keys [][]byte) (int, error) {
	now := s.now()
	var stale []int // keys met past their TTL: deleted after
	i := -1
	n, err := s.eachKey(keys, false, func(sh *shard, h uint64, key []byte) (int, error) {
		i++
		var rec recHeader
		ok, err := s.peek(sh, h, key, &rec)
		if err != nil || !ok {
			return 0, err
		}
		if expired(&rec, now) {
			stale = append(stale, i)
			return 0, nil
		}
		return 1, nil
	})
	s.expireKeys(keys, stale)
	return n, err
}

// expireKeys deletes the keys of the indexes given if they are past
// their TTL: readers met them so, under a read lock.
func (s *Store) expireKeys(keys [][]byte, idx []int) {
	for _, i := range idx {
		s.expireKey(keyHash(s.seed, keys[i]), keys[i])
	}
}

// peek looks key up for a reader holding sh's lock in either mode: the
// record's header goes to rec.
//
// +checklocksignore: the caller holds sh.mu, for reading or writing.
func (s *Store) peek(sh *shard, h uint64, key []byte, rec *recHeader) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	var scratch [recHdr + 64]byte
	f, ok, _, err := lookup(s.spMem, &sh.d, h, key, scratch[:0], false)
	*rec = f.rec
	return ok, err
}

// MGet calls fn with each key's value (nil and false for a missing key),
// all read at one instant. The value is valid only during the call.
func (s *Store) MGet(keys [][]byte, fn func(i int, value []byte, ok bool)) error {
	now := s.now()
	var buf []byte
	var stale []int
	i := 0
	_, err := s.eachKey(keys, false, func(sh *shard, h uint64, key []byte) (int, error) {
		defer func() { i++ }()
		f, ok, b, err := s.lookupRead(sh, h, key, buf)
		buf = b
		if err != nil {
			return 0, err
		}
		if ok && expired(&f.rec, now) {
			stale = append(stale, i)
			ok = false
		}
		if !ok {
			fn(i, nil, false)
			return 0, nil
		}
		if f.tag == 0 { // large: read the value now
			v, err := appendValue(s.spMem, nil, &f, buf)
			if err != nil {
				return 0, err
			}
			fn(i, v, true)
			return 1, nil
		}
		fn(i, buf[recHdr+int(f.rec.klen):f.rec.len()], true)
		return 1, nil
	})
	s.expireKeys(keys, stale)
	return err
}

// lookupRead is lookup (whole) for a reader holding sh's lock.
//
// +checklocksignore: the caller holds sh.mu, for reading or writing.
func (s *Store) lookupRead(sh *shard, h uint64, key []byte, buf []byte) (hit, bool, []byte, error) {
	if s.closed.Load() {
		return hit{}, false, buf, ErrClosed
	}
	return lookup(s.spMem, &sh.d, h, key, buf, true)
}

// MSet stores each key/value pair of kv (key, value, key, value...),
// atomically, removing their TTLs. With ifNoneExist (MSETNX) it stores
// nothing if any of the keys exists, and reports whether it stored.
//
// +checklocksignore: it holds the keys' shards' locks.
func (s *Store) MSet(kv [][]byte, ifNoneExist bool) (bool, error) {
	if len(kv)%2 != 0 {
		return false, errOddPairs
	}
	for i := 0; i < len(kv); i += 2 {
		if err := checkKV(kv[i], kv[i+1]); err != nil {
			return false, err
		}
	}
	var hs [16]uint64
	hashes := hs[:0]
	var set shardSet
	for i := 0; i < len(kv); i += 2 {
		h := keyHash(s.seed, kv[i])
		hashes = append(hashes, h)
		set.add(int(h >> s.shardShift))
	}
	s.lockSet(&set, true)
	defer s.unlockSet(&set, true)
	if ifNoneExist {
		for j, h := range hashes {
			if _, ok, err := s.find(s.shardOf(h), h, kv[2*j], false); err != nil || ok {
				return false, err
			}
		}
	}
	for j, h := range hashes {
		sh := s.shardOf(h)
		f, ok, err := s.find(sh, h, kv[2*j], false)
		if err == nil {
			err = s.store(sh, h, &f, ok, kv[2*j], kv[2*j+1], 0, false)
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// IncrBy adds delta to the integer stored under key (0 if absent) and
// returns the result, keeping the key's TTL: ErrNotInteger if the value is
// not a decimal integer as Redis reads one, ErrOverflow if the sum does
// not fit in an int64.
func (s *Store) IncrBy(key []byte, delta int64) (int64, error) {
	n, fail, err := s.incrBy(key, delta)
	switch fail {
	case incrNotInteger:
		return 0, ErrNotInteger
	case incrOverflow:
		return 0, ErrOverflow
	}
	return n, err
}

type incrFailure uint8

const (
	incrOK incrFailure = iota
	incrNotInteger
	incrOverflow
)

func (s *Store) incrBy(key []byte, delta int64) (int64, incrFailure, error) {
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f, ok, err := s.find(sh, h, key, true)
	if err != nil {
		return 0, incrOK, err
	}
	var n int64
	if ok {
		if f.tag == 0 {
			return 0, incrNotInteger, nil
		}
		v, isInt := ParseInt(sh.rbuf[recHdr+int(f.rec.klen) : f.rec.len()])
		if !isInt {
			return 0, incrNotInteger, nil
		}
		n = v
	}
	if delta < 0 && n < 0 && delta < math.MinInt64-n || delta > 0 && n > 0 && delta > math.MaxInt64-n {
		return 0, incrOverflow, nil
	}
	n += delta
	var digits [20]byte
	return n, incrOK, s.store(sh, h, &f, ok, key, strconv.AppendInt(digits[:0], n, 10), 0, true)
}

// Append appends suffix to the value of key (creating it) and returns the
// new length; the key keeps its TTL. A value that outgrows its block moves
// to one with room to spare, so that appends in a row are mostly in place,
// as Redis's sds strings grow.
func (s *Store) Append(key, suffix []byte) (int, error) {
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f, ok, err := s.find(sh, h, key, false)
	if err != nil {
		return 0, err
	}
	if !ok {
		if err := checkKV(key, suffix); err != nil {
			return 0, err
		}
		return len(suffix), sh.insert(h, key, suffix, 0, s.saves.Load() == 0)
	}
	k, v := int(f.rec.klen), int(f.rec.vlen)
	if v+len(suffix) > MaxValueLen {
		return 0, tooLarge(k, v+len(suffix))
	}
	n := recordLen(k, v+len(suffix))
	size, err := sh.alloc.Size(f.addr)
	if err != nil {
		return 0, err
	}
	if n <= size { // in place: the suffix, then the length, then the tag
		if _, err := sh.mem.WriteAt(suffix, int64(f.addr)+int64(recHdr+k+v)); err != nil {
			return 0, err
		}
		if err := writeU32(sh.mem, f.addr+recVlen, uint32(v+len(suffix))); err != nil {
			return 0, err
		}
		if p := tagPtr(f.addr, n); p != tagPtr(f.addr, f.rec.len()) {
			if err := writeU64(sh.mem, f.link, p); err != nil {
				return 0, err
			}
		}
		sh.dirty++
		return v + len(suffix), nil
	}
	// Move: a block of room to spare, the old record copied over.
	room := min(2*n, n+(1<<20))
	if uint64(room) > sh.maxRecord {
		room = max(n, int(sh.maxRecord)) // no spare room past the limit (allocBlock refuses n past it)
	}
	addr, err := sh.allocBlock(room)
	if err != nil {
		return 0, err
	}
	b := make([]byte, n)
	if _, err := sh.mem.ReadAt(b[:recHdr+k+v], int64(f.addr)); err != nil {
		sh.alloc.Free(addr)
		return 0, err
	}
	copy(b[recHdr+k+v:], suffix)
	rec := f.rec
	rec.vlen = uint32(v + len(suffix))
	rec.encode(b)
	if _, err := sh.mem.WriteAt(b, int64(addr)); err != nil {
		sh.alloc.Free(addr)
		return 0, err
	}
	if rec.expire != 0 {
		if err := sh.ttlMove(rec.ttlIdx, addr); err != nil {
			return 0, err
		}
	}
	if err := writeU64(sh.mem, f.link, tagPtr(addr, n)); err != nil {
		return 0, err
	}
	sh.dirty++
	return v + len(suffix), sh.alloc.Free(f.addr)
}

// StrLen returns the length of the value of key, 0 if there is none.
func (s *Store) StrLen(key []byte) (int, error) {
	var rec recHeader
	ok, err := s.readHeader(key, &rec)
	if err != nil || !ok {
		return 0, err
	}
	return int(rec.vlen), nil
}

// readHeader reads the record header of key, if the key exists (and is
// not past its TTL).
func (s *Store) readHeader(key []byte, rec *recHeader) (bool, error) {
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.RLock()
	ok, err := s.peek(sh, h, key, rec)
	sh.mu.RUnlock()
	if err != nil || !ok {
		return false, err
	}
	if expired(rec, s.now()) {
		s.expireKey(h, key)
		return false, nil
	}
	return true, nil
}

// TTL returns the expire time of key in unix milliseconds (0: none), and
// whether the key exists.
func (s *Store) TTL(key []byte) (expireAt int64, exists bool, err error) {
	var rec recHeader
	ok, err := s.readHeader(key, &rec)
	return rec.expire, ok, err
}

// Expire sets the expire time of key (unix milliseconds) if cond holds,
// reporting whether it did; a time already past deletes the key (and
// counts as done). A missing key is false.
func (s *Store) Expire(key []byte, at int64, cond ExpireCond) (bool, error) {
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f, ok, err := s.find(sh, h, key, false)
	if err != nil || !ok {
		return false, err
	}
	cur := f.rec.expire
	switch {
	case cond&ExpireNX != 0 && cur != 0,
		cond&ExpireXX != 0 && cur == 0,
		cond&ExpireGT != 0 && (cur == 0 || at <= cur),
		cond&ExpireLT != 0 && cur != 0 && at >= cur:
		return false, nil
	case at <= s.now():
		return true, sh.remove(&f)
	}
	return true, sh.setExpire(&f, at)
}

// Persist removes the TTL of key, reporting whether it had one.
func (s *Store) Persist(key []byte) (bool, error) {
	h := keyHash(s.seed, key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f, ok, err := s.find(sh, h, key, false)
	if err != nil || !ok || f.rec.expire == 0 {
		return false, err
	}
	return true, sh.setExpire(&f, 0)
}

// ParseInt reads b as a decimal int64 exactly as Redis's string2ll does:
// an optional minus, no plus, no spaces, no leading zeros, at most 20
// bytes.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		d := uint64(c - '0')
		if c < '0' || c > '9' || v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	switch {
	case neg && v <= 1<<63:
		return -int64(v), true
	case !neg && v <= math.MaxInt64:
		return int64(v), true
	}
	return 0, false
}
