package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/anonfolio/anonfolio/cow"
)

// A shard's index is a hash table with chaining, grown and shrunk by an
// incremental rehash as Redis's dict.c does: while a rehash runs there are
// two bucket arrays, new keys go to the second, and every write to the
// shard (and the store's cron, for idle shards) moves one more bucket of
// the first, visiting at most ten empty ones, until the first is empty and
// the second takes its place. No operation ever moves more than a few
// buckets, so there is no pause proportional to the keys.

const (
	// forceResizeRatio: while a save runs the tables do not grow (growing
	// writes every moved record, which a snapshot shares: COW), unless a
	// table holds five times more keys than buckets (dict.c's
	// dict_force_resize_ratio).
	forceResizeRatio = 5
	// minFill: the cron shrinks a table less than a tenth full
	// (HASHTABLE_MIN_FILL).
	minFill = 10
	// maxTableExp bounds a table at 2^30 buckets (8 GiB) per shard.
	maxTableExp = 30
	// emptyVisits: a rehash step gives up after this many empty buckets
	// per bucket it was asked to move (dict.c's empty_visits).
	emptyVisits = 10
	// groupBuckets is how many buckets a walk reads at once.
	groupBuckets = 512
)

// table is one bucket array: 2^exp tagged pointers.
type table struct {
	addr cow.Addr
	exp  uint64
}

func (t table) size() uint64 { return 1 << t.exp }
func (t table) mask() uint64 { return t.size() - 1 }

// bucket returns the address of the bucket of hash h.
func (t table) bucket(h uint32) cow.Addr { return t.addr + cow.Addr((uint64(h)&t.mask())*8) }

// bytes is the length of the bucket array.
func (t table) bytes() int { return 8 << t.exp }

// dictState is a shard's header, decoded: what the Go side caches.
type dictState struct {
	t         [2]table // t[1].addr != 0 while a rehash runs
	rehashIdx uint64   // the next bucket of t[0] to move
	count     uint64
	ttl       cow.Addr // the TTL array
	ttlCap    uint64
	ttlLen    uint64
}

func (d *dictState) rehashing() bool { return d.t[1].addr != 0 }

func (d *dictState) encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[shT0:], uint64(d.t[0].addr))
	le.PutUint64(b[shT0Exp:], d.t[0].exp)
	le.PutUint64(b[shT1:], uint64(d.t[1].addr))
	le.PutUint64(b[shT1Exp:], d.t[1].exp)
	le.PutUint64(b[shRehash:], d.rehashIdx)
	le.PutUint64(b[shCount:], d.count)
	le.PutUint64(b[shTTL:], uint64(d.ttl))
	le.PutUint64(b[shTTLCap:], d.ttlCap)
	le.PutUint64(b[shTTLLen:], d.ttlLen)
}

func decodeDict(b []byte) dictState {
	le := binary.LittleEndian
	return dictState{
		t: [2]table{
			{cow.Addr(le.Uint64(b[shT0:])), le.Uint64(b[shT0Exp:])},
			{cow.Addr(le.Uint64(b[shT1:])), le.Uint64(b[shT1Exp:])},
		},
		rehashIdx: le.Uint64(b[shRehash:]),
		count:     le.Uint64(b[shCount:]),
		ttl:       cow.Addr(le.Uint64(b[shTTL:])),
		ttlCap:    le.Uint64(b[shTTLCap:]),
		ttlLen:    le.Uint64(b[shTTLLen:]),
	}
}

// readDict reads the shard header at addr of sp.
func readDict(sp mem, addr cow.Addr) (dictState, error) {
	var b [shardHdrSz]byte
	if _, err := sp.ReadAt(b[:], int64(addr)); err != nil {
		return dictState{}, err
	}
	return decodeDict(b[:]), nil
}

// hit is a record a lookup found.
type hit struct {
	addr cow.Addr // the record
	link cow.Addr // the word pointing to it: its bucket, or the previous record's next
	tag  int      // the length its pointer is tagged with
	rec  recHeader
}

// grow returns b with a length of n, reallocated if its capacity is less.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, max(n, 2*cap(b)))
	}
	return b[:n]
}

// lookup finds key, whose hash is h, in d's tables. It reads each
// candidate record into buf, which it returns (grown if it had to): with
// whole, a record below 64 KiB is then whole in buf[:rec.len()], the value
// included; otherwise buf holds at least the header and key.
func lookup(sp mem, d *dictState, h uint64, key []byte, buf []byte, whole bool) (hit, bool, []byte, error) {
	h32 := uint32(h)
	for ti := range 2 {
		t := d.t[ti]
		if ti == 1 && !d.rehashing() {
			break
		}
		if ti == 0 && d.rehashing() && uint64(h32)&t.mask() < d.rehashIdx {
			continue // moved to t[1] already
		}
		link := t.bucket(h32)
		p, err := readU64(sp, link)
		if err != nil {
			return hit{}, false, buf, err
		}
		for steps := uint64(0); p != 0; steps++ {
			if steps > d.count {
				return hit{}, false, buf, corrupt("a bucket chain longer than the %d keys", d.count)
			}
			addr, tl := untag(p)
			n := recHdr
			switch {
			case tl != 0 && whole:
				n = tl
			case tl != 0:
				n = min(tl, recHdr+len(key))
			}
			if n < recHdr {
				return hit{}, false, buf, corrupt("a record of %d bytes at %#x", n, addr)
			}
			buf = grow(buf, n)
			if _, err := sp.ReadAt(buf, int64(addr)); err != nil {
				return hit{}, false, buf, err
			}
			rec := decodeRec(buf)
			if tl != 0 && rec.len() != tl {
				return hit{}, false, buf, corrupt("the record at %#x is %d bytes, its pointer says %d", addr, rec.len(), tl)
			}
			if rec.hash == h32 && int(rec.klen) == len(key) {
				if tl == 0 { // a large record: fetch its key
					buf = grow(buf, recHdr+len(key))
					if _, err := sp.ReadAt(buf[recHdr:], int64(addr)+recHdr); err != nil {
						return hit{}, false, buf, err
					}
				}
				if bytes.Equal(buf[recHdr:recHdr+len(key)], key) {
					return hit{addr: addr, link: link, tag: tl, rec: rec}, true, buf, nil
				}
			}
			link, p = addr+recNext, rec.next
		}
	}
	return hit{}, false, buf, nil
}

// locate finds the record at addr, whose hash is h32, in d's tables: the
// way to the record from the TTL array.
func locate(sp mem, d *dictState, h32 uint32, addr cow.Addr) (hit, error) {
	t := d.t[0]
	if d.rehashing() && uint64(h32)&t.mask() < d.rehashIdx {
		t = d.t[1]
	}
	link := t.bucket(h32)
	p, err := readU64(sp, link)
	for steps := uint64(0); err == nil && p != 0; steps++ {
		a, tl := untag(p)
		if steps > d.count {
			break
		}
		var b [recHdr]byte
		if _, err = sp.ReadAt(b[:], int64(a)); err != nil {
			break
		}
		rec := decodeRec(b[:])
		if a == addr {
			return hit{addr: a, link: link, tag: tl, rec: rec}, nil
		}
		link, p = a+recNext, rec.next
	}
	if err != nil {
		return hit{}, err
	}
	return hit{}, corrupt("the record at %#x is not in its bucket", addr)
}

// rehashStep moves up to n buckets of t[0] to t[1], giving up after
// n*emptyVisits empty ones, and ends the rehash when t[0] is done.
//
// +checklocks:sh.mu
func (sh *shard) rehashStep(n int) error {
	d := &sh.d
	if !d.rehashing() {
		return nil
	}
	visits := n * emptyVisits
	var grp [16 * 8]byte
	for n > 0 && visits > 0 && d.rehashIdx < d.t[0].size() {
		k := min(16, d.t[0].size()-d.rehashIdx)
		base := d.t[0].addr + cow.Addr(d.rehashIdx*8)
		if _, err := sh.mem.ReadAt(grp[:k*8], int64(base)); err != nil {
			return err
		}
		for i := range k {
			if n == 0 || visits == 0 {
				break
			}
			p := binary.LittleEndian.Uint64(grp[i*8:])
			if p == 0 {
				visits--
				d.rehashIdx++
				continue
			}
			if err := sh.moveChain(p); err != nil {
				return err
			}
			if err := writeU64(sh.mem, base+cow.Addr(i*8), 0); err != nil {
				return err
			}
			d.rehashIdx++
			n--
		}
	}
	if d.rehashIdx < d.t[0].size() {
		return sh.writeHeader()
	}
	old := d.t[0]
	d.t[0], d.t[1], d.rehashIdx = d.t[1], table{}, 0
	if err := sh.writeHeader(); err != nil {
		return err
	}
	return sh.alloc.Free(old.addr)
}

// moveChain moves the records of one chain of t[0], starting at p, to
// their buckets in t[1]. Each keeps its tagged pointer.
//
// +checklocks:sh.mu
func (sh *shard) moveChain(p uint64) error {
	d := &sh.d
	for steps := uint64(0); p != 0; steps++ {
		if steps > d.count {
			return corrupt("a bucket chain longer than the %d keys", d.count)
		}
		addr, _ := untag(p)
		var b [recHash + 4]byte
		if _, err := sh.mem.ReadAt(b[:], int64(addr)); err != nil {
			return err
		}
		next, h32 := binary.LittleEndian.Uint64(b[recNext:]), binary.LittleEndian.Uint32(b[recHash:])
		dst := d.t[1].bucket(h32)
		head, err := readU64(sh.mem, dst)
		if err != nil {
			return err
		}
		if err := writeU64(sh.mem, addr+recNext, head); err != nil {
			return err
		}
		if err := writeU64(sh.mem, dst, p); err != nil {
			return err
		}
		p = next
	}
	return nil
}

// expExceeding returns the exponent of the smallest table of at least n
// buckets, and at least minExp.
func expExceeding(n uint64, minExp uint64) uint64 {
	e := minExp
	for e < maxTableExp && uint64(1)<<e < n {
		e++
	}
	return e
}

// expandIfNeeded starts growing t[0] before an insert would take the
// table past one key per bucket (dict.c's _dictExpandIfNeeded).
//
// +checklocks:sh.mu
func (sh *shard) expandIfNeeded(canResize bool) error {
	d := &sh.d
	if d.rehashing() || d.count < d.t[0].size() || d.t[0].exp >= maxTableExp || 16<<d.t[0].exp > sh.maxRecord {
		return nil // at its largest (an array of buckets is one block): chains grow instead
	}
	if !canResize && d.count/d.t[0].size() <= forceResizeRatio {
		return nil
	}
	return sh.startRehash(expExceeding(d.count+1, sh.minExp))
}

// shrinkIfNeeded starts shrinking a table less than a tenth full, as
// Redis's cron does (htNeedsResize, dictResize).
//
// +checklocks:sh.mu
func (sh *shard) shrinkIfNeeded() error {
	d := &sh.d
	if d.rehashing() || d.t[0].exp <= sh.minExp || d.count*100/d.t[0].size() >= minFill {
		return nil
	}
	return sh.startRehash(expExceeding(d.count, sh.minExp))
}

// startRehash allocates t[1] of 2^exp buckets (it reads as zero: no
// bucket is set) and starts moving t[0] into it.
//
// +checklocks:sh.mu
func (sh *shard) startRehash(exp uint64) error {
	if exp == sh.d.t[0].exp {
		return nil
	}
	t := table{exp: exp}
	addr, err := sh.allocBlock(t.bytes())
	if err != nil {
		return err
	}
	t.addr = addr
	sh.d.t[1], sh.d.rehashIdx = t, 0
	if err := sh.writeHeader(); err != nil {
		sh.d.t[1] = table{}
		sh.alloc.Free(addr)
		return err
	}
	return nil
}

// writeHeader writes the cached header through to the space.
//
// +checklocks:sh.mu
func (sh *shard) writeHeader() error {
	var b [shardHdrSz]byte
	sh.d.encode(b[:])
	_, err := sh.mem.WriteAt(b[:], int64(sh.hdr))
	return err
}

// scanStep emits the records of the buckets cursor v stands for and
// returns the next cursor, as dict.c's dictScan: v counts in reverse
// binary over the high bits of the mask, so that the buckets a key can be
// in before and after any number of resizes are visited in an order
// where a key present throughout the scan is returned at least once.
func scanStep(sp mem, d *dictState, v uint64, emit func(p uint64) error) (uint64, error) {
	chain := func(t table, i uint64) error {
		if d.rehashing() && t == d.t[0] && i < d.rehashIdx {
			return nil // moved: t[1] holds those keys
		}
		p, err := readU64(sp, t.addr+cow.Addr(i*8))
		for steps := uint64(0); err == nil && p != 0; steps++ {
			if steps > d.count {
				return corrupt("a bucket chain longer than the %d keys", d.count)
			}
			next, rerr := readU64(sp, cow.Addr(p&addrMask)+recNext)
			if rerr != nil {
				return rerr
			}
			if err = emit(p); err == nil {
				p = next
			}
		}
		return err
	}
	if !d.rehashing() {
		m0 := d.t[0].mask()
		if err := chain(d.t[0], v&m0); err != nil {
			return v, err
		}
		return nextCursor(v, m0), nil
	}
	t0, t1 := d.t[0], d.t[1]
	if t0.size() > t1.size() {
		t0, t1 = t1, t0
	}
	m0, m1 := t0.mask(), t1.mask()
	if err := chain(t0, v&m0); err != nil {
		return v, err
	}
	// Then every bucket of the larger table that expands the smaller's.
	for {
		if err := chain(t1, v&m1); err != nil {
			return v, err
		}
		v = nextCursor(v, m1)
		if v&(m0^m1) == 0 {
			break
		}
	}
	return v, nil
}

// nextCursor increments the bits of v under mask in reverse order.
func nextCursor(v, mask uint64) uint64 {
	v |= ^mask
	v = reverseBits(v)
	v++
	return reverseBits(v)
}

func reverseBits(v uint64) uint64 { return bits.Reverse64(v) }

// readRecord reads the record p points to into buf (grown), whole.
func readRecord(sp mem, p uint64, buf []byte) (recHeader, []byte, error) {
	addr, tl := untag(p)
	n := tl
	if n == 0 {
		n = recHdr
	}
	buf = grow(buf, n)
	if _, err := sp.ReadAt(buf, int64(addr)); err != nil {
		return recHeader{}, buf, err
	}
	rec := decodeRec(buf)
	if tl == 0 {
		if rec.len() <= maxTag || uint64(rec.klen) > MaxKeyLen || uint64(rec.vlen) > MaxValueLen {
			return rec, buf, corrupt("a large record at %#x of %d+%d bytes", addr, rec.klen, rec.vlen)
		}
		buf = grow(buf, rec.len())
		if _, err := sp.ReadAt(buf[recHdr:], int64(addr)+recHdr); err != nil {
			return rec, buf, err
		}
	} else if rec.len() != tl {
		return rec, buf, fmt.Errorf("%w: the record at %#x is %d bytes, its pointer says %d", ErrCorrupt, addr, rec.len(), tl)
	}
	return rec, buf, nil
}
