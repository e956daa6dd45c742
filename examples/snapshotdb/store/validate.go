package store

import (
	"bytes"
	"slices"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/slab"
)

// attach opens the store whose images were just loaded into sp: it finds
// the superblock, opens the allocator it names (slab.Open, then its
// Check), reads the shard headers, and validates everything before
// handing the store out.
func attach(a *folio.Arena, sp *cow.Space, opts Options) (*Store, error) {
	root, err := findRoot(sp)
	if err != nil {
		return nil, err
	}
	v, err := readView(sp, root)
	if err != nil {
		return nil, err
	}
	sb, ps := v.sb, sp.PageSize()
	rootRegion, rootOK := covered(sp, root, uint64((1+len(v.dicts))*ps))
	slabRegion, slabOK := covered(sp, sb.slab, sb.slabLen)
	switch {
	case int(sb.pageSize) != ps:
		return nil, corrupt("an image of %d-byte pages in a space of %d-byte pages", sb.pageSize, ps)
	case sb.shards != root+cow.Addr(ps) || !rootOK:
		return nil, corrupt("the root region does not hold %d shard headers", len(v.dicts))
	case sb.slabLen < 2*classReserve(sb.maxRecord) || sb.slabLen%classReserve(sb.maxRecord) != 0 || !slabOK || slabRegion.Addr != sb.slab ||
		(root >= sb.slab && uint64(root-sb.slab) < sb.slabLen) || rootRegion.Addr == slabRegion.Addr:
		return nil, corrupt("the allocator's reservation (%d bytes at %#x) is not mapped, or holds the root", sb.slabLen, sb.slab)
	}
	al, err := slab.Open(sp, sb.slab)
	if err == nil {
		err = al.Check()
	}
	if err != nil {
		return nil, corrupt("the allocator: %v", err)
	}
	opts.Shards = len(v.dicts)
	s := newStore(a, sp, root, sb, &slabRef{a: al, len: sb.slabLen}, opts)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.d = v.dicts[i]
		sh.mu.Unlock()
	}
	if err := s.validate(); err != nil {
		s.closeShards()
		return nil, err
	}
	return s, nil
}

// closeShards closes the shards' Accessors of a store that is not handed
// out.
//
// +checklocksignore: the store is not shared yet.
func (s *Store) closeShards() {
	for i := range s.shards {
		s.shards[i].closeMem()
	}
}

// validator checks a loaded store: after it, no operation can read or
// write outside the store's blocks, loop, or find the structures
// inconsistent.
type validator struct {
	s      *Store
	al     allocator
	blocks []cow.Addr // every block the store's structures own
	buf    []byte
}

// validate checks every shard: its tables and TTL array are blocks of the
// allocator; every record is a block of its own, reachable once, of a key
// that hashes to its shard and bucket, with no other record of the same
// key; the counts and the TTL array match the records; no block is owned
// twice. (The allocator checked itself: Check.)
func (s *Store) validate() error {
	v := &validator{s: s, al: s.slab.Load().a}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		err := v.shard(i, sh.d)
		sh.mu.Unlock()
		if err != nil {
			return err
		}
	}
	slices.Sort(v.blocks)
	for i := 1; i < len(v.blocks); i++ {
		if v.blocks[i] == v.blocks[i-1] {
			return corrupt("block %#x is owned twice (two pointers to one record, or a table that is a record)", v.blocks[i])
		}
	}
	return nil
}

// owned records the block at addr as the store's, checking that it is an
// allocated block of at least n bytes, and returns its size.
func (v *validator) owned(addr cow.Addr, n uint64, what string) (uint64, error) {
	size, err := v.al.Size(addr)
	if err != nil {
		return 0, corrupt("%s at %#x: %v", what, addr, err)
	}
	if uint64(size) < n {
		return 0, corrupt("%s: block %#x of %d bytes, %d needed", what, addr, size, n)
	}
	v.blocks = append(v.blocks, addr)
	return uint64(size), nil
}

// shard checks shard i's header, tables, records and TTL array.
func (v *validator) shard(i int, d dictState) error {
	s := v.s
	minExp := s.shards[i].minExp
	switch {
	case d.t[0].exp < minExp || d.t[0].exp > maxTableExp:
		return corrupt("shard %d: a table of 2^%d buckets", i, d.t[0].exp)
	case d.rehashing() && (d.t[1].exp < minExp || d.t[1].exp > maxTableExp || d.t[1].exp == d.t[0].exp || d.rehashIdx > d.t[0].size()):
		return corrupt("shard %d: a rehash from 2^%d to 2^%d buckets at %d", i, d.t[0].exp, d.t[1].exp, d.rehashIdx)
	case !d.rehashing() && (d.t[1].exp != 0 || d.rehashIdx != 0):
		return corrupt("shard %d: a rehash state without a second table", i)
	case d.ttlCap == 0 && (d.ttl != 0 || d.ttlLen != 0), d.ttlLen > d.ttlCap:
		return corrupt("shard %d: a TTL array of %d of %d", i, d.ttlLen, d.ttlCap)
	}
	for ti := range 2 {
		if ti == 0 || d.rehashing() {
			if _, err := v.owned(d.t[ti].addr, uint64(d.t[ti].bytes()), "table"); err != nil {
				return err
			}
		}
	}
	if d.ttlCap > 0 {
		if _, err := v.owned(d.ttl, d.ttlCap*8, "TTL array"); err != nil {
			return err
		}
	}
	var records, withTTL uint64
	var buckets [groupBuckets * 8]byte
	for ti := range 2 {
		t := d.t[ti]
		if ti == 1 && !d.rehashing() {
			break
		}
		for b := uint64(0); b < t.size(); b += groupBuckets {
			k := min(groupBuckets, t.size()-b)
			if _, err := s.sp.ReadAt(buckets[:k*8], int64(t.addr)+int64(b*8)); err != nil {
				return err
			}
			for j := range k {
				p := leU64(buckets[j*8:])
				if p != 0 && ti == 0 && d.rehashing() && b+j < d.rehashIdx {
					return corrupt("shard %d: bucket %d was moved but is not empty", i, b+j)
				}
				n, t, err := v.chain(i, &d, ti, b+j, p)
				if err != nil {
					return err
				}
				records, withTTL = records+n, withTTL+t
				if records > d.count {
					return corrupt("shard %d: more records than its %d keys", i, d.count)
				}
			}
		}
	}
	if records != d.count || withTTL != d.ttlLen {
		return corrupt("shard %d: %d records, %d with a TTL; its header says %d and %d", i, records, withTTL, d.count, d.ttlLen)
	}
	return nil
}

// chain checks the chain of bucket b of table ti from p, and returns its
// records and those with a TTL.
func (v *validator) chain(shard int, d *dictState, ti int, b uint64, p uint64) (n, withTTL uint64, err error) {
	s := v.s
	t := d.t[ti]
	var hashes []uint64
	for ; p != 0; n++ {
		addr, tl := untag(p)
		size, err := v.owned(addr, recHdr, "a record")
		if err != nil {
			return n, withTTL, corrupt("shard %d bucket %d: %v", shard, b, err)
		}
		rec, buf, err := readRecord(s.spMem, p, v.buf)
		v.buf = buf
		if err != nil {
			return n, withTTL, err
		}
		if uint64(rec.len()) > size || (tl == 0) != (rec.len() > maxTag) || rec.klen > MaxKeyLen || rec.vlen > MaxValueLen {
			return n, withTTL, corrupt("shard %d bucket %d: a record of %d+%d bytes in a block of %d", shard, b, rec.klen, rec.vlen, size)
		}
		key := buf[recHdr : recHdr+int(rec.klen)]
		h := keyHash(s.seed, key)
		if int(h>>s.shardShift) != shard || uint32(h) != rec.hash || uint64(rec.hash)&t.mask() != b {
			return n, withTTL, corrupt("shard %d bucket %d: a key that hashes elsewhere", shard, b)
		}
		if rec.expire != 0 {
			at, err := readU64(s.spMem, d.ttl+cow.Addr(uint64(rec.ttlIdx)*8))
			if err != nil || uint64(rec.ttlIdx) >= d.ttlLen || cow.Addr(at) != addr {
				return n, withTTL, corrupt("shard %d: record %#x is not at its place %d in the TTL array", shard, addr, rec.ttlIdx)
			}
			withTTL++
		}
		// Another record of the same key: in this chain (taken to be one of
		// the same 64-bit hash), or, during a rehash, in the bucket of
		// table 0 not yet moved.
		for _, o := range hashes {
			if o == h {
				return n, withTTL, corrupt("shard %d bucket %d: a key twice", shard, b)
			}
		}
		hashes = append(hashes, h)
		if ti == 1 && uint64(rec.hash)&d.t[0].mask() >= d.rehashIdx {
			var f hit
			var ok bool
			old := *d
			old.t[1] = table{}
			f, ok, _, err = lookup(s.spMem, &old, h, bytes.Clone(key), nil, false)
			if err != nil || ok {
				return n, withTTL, corrupt("shard %d: key at %#x is in both tables (%#x)", shard, addr, f.addr)
			}
		}
		p = rec.next
	}
	return n, withTTL, nil
}
