package store

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// attach opens the store whose regions were just loaded into sp: it reads
// the superblock, the slab and the shard headers, checks that they agree
// with the regions, and validates everything before handing the store out.
func attach(a *folio.Arena, sp *cow.Space, regions []region, opts Options) (*Store, error) {
	if len(regions) != 3 {
		return nil, corrupt("%d regions, want 3", len(regions))
	}
	root, meta, spans := regions[0], regions[1], regions[2]
	v, err := readView(sp, root.addr)
	if err != nil {
		return nil, err
	}
	sb, ps := v.sb, sp.PageSize()
	switch {
	case int(sb.pageSize) != ps:
		return nil, corrupt("an image of %d-byte pages in a space of %d-byte pages", sb.pageSize, ps)
	case sb.shards != root.addr+cow.Addr(ps) || root.reserved != uint64((1+len(v.dicts))*ps) || root.stored != root.reserved:
		return nil, corrupt("the root region does not hold %d shard headers", len(v.dicts))
	case sb.slab != meta.addr:
		return nil, corrupt("the slab is at %#x, its region at %#x", sb.slab, meta.addr)
	}
	heap, err := openSlab(sp, meta, spans, len(v.dicts))
	if err != nil {
		return nil, err
	}
	opts.Shards = len(v.dicts)
	s := newStore(a, sp, root.addr, sb, heap, opts)
	for i := range s.shards {
		sh := &s.shards[i]
		c, err := heap.cache(i)
		if err != nil {
			return nil, err
		}
		sh.mu.Lock()
		sh.alloc, sh.d = c, v.dicts[i]
		sh.mu.Unlock()
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// openSlab reads the heap header at meta and checks it against the regions.
func openSlab(sp *cow.Space, meta, spans region, nCaches int) (*slabHeap, error) {
	var b [hpLen]byte
	if _, err := sp.ReadAt(b[:], int64(meta.addr)); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	ps := sp.PageSize()
	h := &slabHeap{sp: sp, meta: meta.addr, caches: cow.Addr(le.Uint64(b[hpCaches:])), nCaches: int(le.Uint64(b[hpNCaches:])),
		desc: cow.Addr(le.Uint64(b[hpDesc:])), spans: cow.Addr(le.Uint64(b[hpSpans:])), maxSpans: le.Uint64(b[hpMaxSpans:])}
	top, freeRuns := le.Uint64(b[hpTop:]), cow.Addr(le.Uint64(b[hpFreeRuns:]))
	switch {
	case string(b[:8]) != slabMagic:
		return nil, corrupt("no slab at %#x", meta.addr)
	case h.nCaches != nCaches || h.caches != meta.addr+cow.Addr(ps) || h.desc != meta.addr+cow.Addr(ps*(1+nCaches)):
		return nil, corrupt("the slab's caches and descriptors are not where its region puts them")
	case h.maxSpans == 0 || h.maxSpans > 1<<30 || meta.reserved != h.metaLen() || meta.stored != meta.reserved:
		return nil, corrupt("a slab of %d spans in a meta region of %d bytes", h.maxSpans, meta.reserved)
	case h.spans != spans.addr || spans.reserved != h.maxSpans*spanSize || top > h.maxSpans || spans.stored != top*spanSize:
		return nil, corrupt("the slab's spans (%d of %d) do not match their region", top, h.maxSpans)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.top, h.freeRuns = top, freeRuns
	if err := h.readClasses(); err != nil {
		return nil, err
	}
	return h, nil
}

// unitMap has a bit per chunkUnit of the carved spans: the blocks, chunks
// and bump ranges seen so far.
type unitMap struct {
	base cow.Addr
	bits []uint64
}

// mark marks [addr, addr+n), reporting false if any of it was marked or
// it is outside the map.
func (m *unitMap) mark(addr cow.Addr, n uint64) bool {
	if addr < m.base {
		return false
	}
	first, last := uint64(addr-m.base)/chunkUnit, (uint64(addr-m.base)+n+chunkUnit-1)/chunkUnit
	if last > uint64(len(m.bits))*64 {
		return false
	}
	for u := first; u < last; u++ {
		w, bit := u/64, uint64(1)<<(u%64)
		if m.bits[w]&bit != 0 {
			return false
		}
		m.bits[w] |= bit
	}
	return true
}

// validator checks a loaded store: after it, no operation can read or
// write outside the store's blocks, loop, or find the structures
// inconsistent.
type validator struct {
	s     *Store
	h     *slabHeap
	top   uint64
	desc  []uint32
	units unitMap
	buf   []byte
}

// validate checks the slab (descriptors, free runs, caches), then every
// shard: its tables and TTL array are blocks of the slab; every record is
// a block of its own, reachable once, of a key that hashes to its shard
// and bucket, with no other record of the same key; the counts and the TTL
// array match the records; no block is both live and free.
func (s *Store) validate() error {
	h := s.heap
	h.mu.Lock()
	top, freeRuns, classes := h.top, h.freeRuns, slices.Clone(h.cls)
	h.mu.Unlock()
	v := &validator{s: s, h: h, top: top, desc: make([]uint32, top),
		units: unitMap{base: h.spans, bits: make([]uint64, (top*spanSize/chunkUnit+63)/64)}}
	if top > 0 {
		raw := make([]byte, 4*top)
		if _, err := s.sp.ReadAt(raw, int64(h.desc)); err != nil {
			return err
		}
		for i := range v.desc {
			v.desc[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
	}
	if err := v.spans(freeRuns); err != nil {
		return err
	}
	for k, r := range classes {
		if err := v.bumpRange(k, r); err != nil {
			return err
		}
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		err := v.cache(sh.alloc.(*slabCache))
		if err == nil {
			err = v.shard(i, sh.d)
		}
		sh.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// spans checks the descriptors and the free-run list.
func (v *validator) spans(freeRuns cow.Addr) error {
	heads := make(map[uint64]uint64) // free run heads: spans
	for i := uint64(0); i < v.top; {
		d := v.desc[i]
		n := uint64(d & descSpanMask)
		switch {
		case d >= 1 && int(d) <= nClasses:
			i++
			continue
		case d&descLarge != 0 && d&(descCont|descFreeRun) == 0:
			if err := v.run(i, n, descCont); err != nil {
				return err
			}
		case d&descFreeRun != 0 && d&(descLarge|descCont) == 0:
			if err := v.run(i, n, descFree); err != nil {
				return err
			}
			heads[i] = n
		default:
			return corrupt("span %d: descriptor %#x", i, d)
		}
		i += n
	}
	seen := 0
	for run := freeRuns; run != 0; seen++ {
		i := uint64(run-v.h.spans) >> spanShift
		n, ok := heads[i]
		if run < v.h.spans || uint64(run-v.h.spans)%spanSize != 0 || !ok || seen >= len(heads) {
			return corrupt("free run list: %#x is not a free run (or the list loops)", run)
		}
		var b [16]byte
		if _, err := v.s.sp.ReadAt(b[:], int64(run)); err != nil {
			return err
		}
		if binary.LittleEndian.Uint64(b[8:]) != n {
			return corrupt("free run at %#x: %d spans, its descriptor says %d", run, binary.LittleEndian.Uint64(b[8:]), n)
		}
		if !v.units.mark(run, n*spanSize) {
			return corrupt("free run at %#x overlaps", run)
		}
		run = cow.Addr(binary.LittleEndian.Uint64(b[:]))
	}
	if seen != len(heads) {
		return corrupt("%d free runs, %d on the list", len(heads), seen)
	}
	return nil
}

// run checks a run of n spans from i whose further spans are rest.
func (v *validator) run(i, n uint64, rest uint32) error {
	if n == 0 || i+n > v.top {
		return corrupt("span %d: a run of %d spans past the %d carved", i, n, v.top)
	}
	for j := i + 1; j < i+n; j++ {
		if v.desc[j] != rest {
			return corrupt("span %d: descriptor %#x inside a run", j, v.desc[j])
		}
	}
	return nil
}

// block returns the size of the allocated block at addr, or an error if
// addr does not start one.
func (v *validator) block(addr cow.Addr) (uint64, error) {
	if addr < v.h.spans || uint64(addr-v.h.spans) >= v.top*spanSize {
		return 0, corrupt("%#x is outside the carved spans", addr)
	}
	i := uint64(addr-v.h.spans) >> spanShift
	span := v.h.spans + cow.Addr(i<<spanShift)
	d := v.desc[i]
	switch {
	case d >= 1 && int(d) <= nClasses:
		size := uint64(classSizes[d-1])
		if off := uint64(addr - span); off%size != 0 || off+size > spanSize {
			return 0, corrupt("%#x is not a chunk of class %d", addr, d-1)
		}
		return size, nil
	case d&descLarge != 0 && d&(descCont|descFreeRun) == 0 && addr == span:
		return uint64(d&descSpanMask) * spanSize, nil
	}
	return 0, corrupt("%#x is not an allocated block", addr)
}

// bumpRange checks a range of chunks of class k not yet handed out: in
// one span of the class, on chunk boundaries, and seen nowhere else.
func (v *validator) bumpRange(k int, r spanRange) error {
	if r.end == 0 && r.bump == 0 {
		return nil
	}
	size := cow.Addr(classSizes[k])
	if r.end < v.h.spans+1 || r.bump > r.end {
		return corrupt("class %d: range [%#x, %#x)", k, r.bump, r.end)
	}
	i := uint64(r.end-1-v.h.spans) >> spanShift
	span := v.h.spans + cow.Addr(i<<spanShift)
	if i >= v.top || v.desc[i] != uint32(k+1) || r.bump < span || r.end > span+spanSize/size*size ||
		(r.bump-span)%size != 0 || (r.end-span)%size != 0 {
		return corrupt("class %d: range [%#x, %#x) is not in a span of the class", k, r.bump, r.end)
	}
	if !v.units.mark(r.bump, uint64(r.end-r.bump)) {
		return corrupt("class %d: range [%#x, %#x) overlaps", k, r.bump, r.end)
	}
	return nil
}

// cache checks one cache's ranges and free lists.
func (v *validator) cache(c *slabCache) error {
	for k, st := range c.cls {
		size := cow.Addr(classSizes[k])
		if err := v.bumpRange(k, st.spanRange); err != nil {
			return err
		}
		for p := st.free; p != 0; {
			n, err := v.block(p)
			if err != nil || n != uint64(size) {
				return corrupt("class %d: free chunk %#x is not a chunk of the class", k, p)
			}
			if !v.units.mark(p, uint64(size)) {
				return corrupt("class %d: free chunk %#x overlaps another or the list loops", k, p)
			}
			next, err := readU64(v.s.sp, p)
			if err != nil {
				return err
			}
			p = cow.Addr(next)
		}
	}
	return nil
}

// owned marks the block at addr as the shard's, checking it holds n bytes.
func (v *validator) owned(addr cow.Addr, n uint64, what string) error {
	size, err := v.block(addr)
	if err != nil {
		return corrupt("%s: %v", what, err)
	}
	if size < n || !v.units.mark(addr, size) {
		return corrupt("%s: block %#x of %d bytes (%d needed) or shared", what, addr, size, n)
	}
	return nil
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
			if err := v.owned(d.t[ti].addr, uint64(d.t[ti].bytes()), "table"); err != nil {
				return err
			}
		}
	}
	if d.ttlCap > 0 {
		if err := v.owned(d.ttl, d.ttlCap*8, "TTL array"); err != nil {
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
		size, err := v.block(addr)
		if err != nil {
			return n, withTTL, corrupt("shard %d bucket %d: %v", shard, b, err)
		}
		rec, buf, err := readRecord(s.sp, p, v.buf)
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
		if !v.units.mark(addr, size) {
			return n, withTTL, corrupt("shard %d bucket %d: record %#x is reached twice or overlaps", shard, b, addr)
		}
		if rec.expire != 0 {
			at, err := readU64(s.sp, d.ttl+cow.Addr(uint64(rec.ttlIdx)*8))
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
			f, ok, _, err = lookup(s.sp, &old, h, bytes.Clone(key), nil, false)
			if err != nil || ok {
				return n, withTTL, corrupt("shard %d: key at %#x is in both tables (%#x)", shard, addr, f.addr)
			}
		}
		p = rec.next
	}
	return n, withTTL, nil
}
