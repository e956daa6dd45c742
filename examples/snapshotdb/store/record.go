package store

import (
	"fmt"

	"github.com/anonfolio/anonfolio/cow"
)

// The writers of a shard: insert, update and remove a record. Each keeps
// the shard's invariants (the chain, the count, the TTL array) whatever
// fails: an error leaves the record as it was, or, for an insert, absent.

// assembleMax: a record up to this long is assembled in the shard's buffer
// and written with one WriteAt (atomic with respect to a Fork if it does
// not cross a page; the quiesce makes it so anyway).
const assembleMax = 64 << 10

// writeRecord writes rec, key and value at addr.
//
// +checklocks:sh.mu
func (sh *shard) writeRecord(addr cow.Addr, rec *recHeader, key, value []byte) error {
	n := recHdr + len(key)
	whole := n+len(value) <= assembleMax
	if whole {
		n += len(value)
	}
	sh.wbuf = grow(sh.wbuf, n)
	b := sh.wbuf
	rec.encode(b)
	copy(b[recHdr:], key)
	if whole {
		copy(b[recHdr+len(key):], value)
	}
	if _, err := sh.mem.WriteAt(b, int64(addr)); err != nil {
		return err
	}
	if !whole {
		_, err := sh.mem.WriteAt(value, int64(addr)+int64(n))
		return err
	}
	return nil
}

// insert adds a key the caller found absent (hash h), with an expire time
// (0: none).
//
// +checklocks:sh.mu
func (sh *shard) insert(h uint64, key, value []byte, expire int64, canResize bool) error {
	if err := sh.expandIfNeeded(canResize); err != nil {
		return err
	}
	d := &sh.d
	if expire != 0 {
		if err := sh.ttlReserve(); err != nil {
			return err
		}
	}
	n := recordLen(len(key), len(value))
	addr, err := sh.allocBlock(n)
	if err != nil {
		return err
	}
	t := d.t[0]
	if d.rehashing() {
		t = d.t[1]
	}
	link := t.bucket(uint32(h))
	head, err := readU64(sh.mem, link)
	rec := recHeader{next: head, expire: expire, hash: uint32(h), klen: uint32(len(key)), vlen: uint32(len(value)), ttlIdx: uint32(d.ttlLen)}
	if expire == 0 {
		rec.ttlIdx = 0
	}
	if err == nil {
		err = sh.writeRecord(addr, &rec, key, value)
	}
	if err == nil && expire != 0 {
		err = sh.ttlPush(addr)
	}
	if err == nil {
		if err = writeU64(sh.mem, link, tagPtr(addr, n)); err != nil && expire != 0 {
			d.ttlLen--
			sh.writeHeader()
		}
	}
	if err != nil {
		sh.alloc.Free(addr)
		return err
	}
	d.count++
	sh.dirty++
	return sh.writeHeader()
}

// allocBlock allocates a block of n bytes, at most the store's
// MaxRecord (ErrTooLarge otherwise).
//
// +checklocks:sh.mu
func (sh *shard) allocBlock(n int) (cow.Addr, error) {
	if uint64(n) > sh.maxRecord {
		return 0, fmt.Errorf("%w: a block of %d bytes, more than the store's MaxRecord (%d)", ErrTooLarge, n, sh.maxRecord)
	}
	return sh.alloc.Alloc(n)
}

// inPlaceSlack: a record keeps its block when it wastes less than this
// (or less than half of the block).
const inPlaceSlack = 64 << 10

// inPlace reports whether a record of n bytes belongs in a block of size
// bytes: it fits, and does not waste most of it.
func inPlace(n, size int) bool { return n <= size && (2*n >= size || size-n < inPlaceSlack) }

// update gives the record f found a new value and expire time (0: none).
//
// +checklocks:sh.mu
func (sh *shard) update(f *hit, key, value []byte, expire int64) error {
	n := recordLen(len(key), len(value))
	size := n // a value of the same length fits where it is (the common overwrite)
	if n != f.rec.len() {
		var err error
		if size, err = sh.alloc.Size(f.addr); err != nil {
			return err
		}
	}
	had, has := f.rec.expire != 0, expire != 0
	if has && !had {
		if err := sh.ttlReserve(); err != nil {
			return err
		}
	}
	rec := f.rec
	rec.vlen, rec.expire = uint32(len(value)), expire
	switch {
	case has && !had:
		rec.ttlIdx = uint32(sh.d.ttlLen)
	case !has:
		rec.ttlIdx = 0
	}
	addr := f.addr
	if !inPlace(n, size) {
		var err error
		if addr, err = sh.allocBlock(n); err != nil {
			return err
		}
	}
	if err := sh.writeRecord(addr, &rec, key, value); err != nil {
		if addr != f.addr {
			sh.alloc.Free(addr)
		}
		return err
	}
	// The record is written (in place: the old one is gone). From here on
	// only the TTL array and the link change: small writes into pages the
	// shard wrote recently.
	var err error
	switch {
	case has && !had:
		err = sh.ttlPush(addr)
	case had && !has:
		err = sh.ttlRemove(f.rec.ttlIdx)
	case has && addr != f.addr:
		err = sh.ttlMove(rec.ttlIdx, addr)
	}
	if err != nil {
		return err
	}
	if p := tagPtr(addr, n); addr != f.addr || p != tagPtr(f.addr, f.rec.len()) {
		if err := writeU64(sh.mem, f.link, p); err != nil {
			return err
		}
	}
	if addr != f.addr {
		sh.alloc.Free(f.addr)
	}
	sh.dirty++
	return nil
}

// setExpire changes only the expire time of the record f found.
//
// +checklocks:sh.mu
func (sh *shard) setExpire(f *hit, expire int64) error {
	had, has := f.rec.expire != 0, expire != 0
	idx := f.rec.ttlIdx
	switch {
	case has && !had:
		if err := sh.ttlReserve(); err != nil {
			return err
		}
		idx = uint32(sh.d.ttlLen)
	case !has:
		idx = 0
	}
	rec := f.rec
	rec.expire, rec.ttlIdx = expire, idx
	if err := writeU64(sh.mem, f.addr+recExpire, uint64(expire)); err != nil {
		return err
	}
	if err := writeU32(sh.mem, f.addr+recTTLIdx, idx); err != nil {
		return err
	}
	switch {
	case has && !had:
		if err := sh.ttlPush(f.addr); err != nil {
			return err
		}
	case had && !has:
		if err := sh.ttlRemove(f.rec.ttlIdx); err != nil {
			return err
		}
	}
	f.rec = rec
	sh.dirty++
	return nil
}

// remove unlinks and frees the record f found.
//
// +checklocks:sh.mu
func (sh *shard) remove(f *hit) error {
	if err := writeU64(sh.mem, f.link, f.rec.next); err != nil {
		return err
	}
	if f.rec.expire != 0 {
		if err := sh.ttlRemove(f.rec.ttlIdx); err != nil {
			return err
		}
	}
	sh.d.count--
	sh.dirty++
	if err := sh.writeHeader(); err != nil {
		return err
	}
	return sh.alloc.Free(f.addr)
}
