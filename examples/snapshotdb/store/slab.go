package store

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// The store's own slab: a stand-in for the library's slab package (issue
// 16), kept simple on purpose. Every byte of its state is in the space:
//
//	meta region   the heap header page (with, per small class, the range of
//	              its current span not yet handed out); one cache page per
//	              shard (per small class: free-list head, and the range of
//	              chunks the cache holds); then a uint32 descriptor per span
//	spans region  spans of spanSize bytes, carved from the bottom up
//
// A small block (at most maxSmall bytes) is a chunk of a span given to one
// size class. A shard's cache pops it from its free list (linked through
// the chunks' first 8 bytes) or bumps it from the range it holds, and
// refills that range with a page's worth of chunks from the class's
// current span, under the heap's lock: the shards share spans, so a small
// store does not need a span per shard and class. A large block is a run
// of whole spans; freed, its pages go back to the arena (DontNeed) and the
// run goes on the heap's free-run list, which large allocations search
// first fit. Spans of small classes are never given back (memcached's
// slabs do the same); FLUSHALL resets everything.
const (
	slabMagic   = "ANFSLAB\x00"
	spanShift   = 16
	spanSize    = 1 << spanShift // 64 KiB
	maxSmall    = 16 << 10
	chunkUnit   = 16
	classStride = 24   // bytes of a class's state in a cache page
	refillBytes = 4096 // what a cache takes from its class's span at once

	// Heap header fields.
	hpMagic    = 0  // slabMagic
	hpMaxSpans = 8  // uint64: spans the region has room for
	hpTop      = 16 // uint64: spans carved so far
	hpFreeRuns = 24 // cow.Addr: the first free large run, 0 if none
	hpCaches   = 32 // cow.Addr: the first cache page
	hpNCaches  = 40 // uint64
	hpDesc     = 48 // cow.Addr: the descriptors
	hpSpans    = 56 // cow.Addr: the spans region
	hpLen      = 64
	hpClasses  = 64 // per small class: {bump, end} of its current span, 16 bytes

	// Descriptor values.
	descFree     = 0       // not carved, or inside a free run
	descLarge    = 1 << 31 // | spans: the first span of an allocated large block
	descCont     = 1 << 30 // a further span of an allocated large block
	descFreeRun  = 1 << 29 // | spans: the first span of a free run
	descSpanMask = 1<<29 - 1
)

// Small size classes: 16-byte steps up to 512 bytes, then eight per
// doubling up to maxSmall, so that a chunk wastes at most 15 bytes, or an
// eighth. (Records of a common value size waste little: a 16-byte key and
// a 256-byte value make a 304-byte record, a chunk of exactly that.)
const (
	fineLimit = 512 // classes of fineStep up to here
	fineStep  = chunkUnit
	perDouble = 8 // classes per doubling above fineLimit
)

var classSizes = func() []int {
	var c []int
	for s := fineStep; s <= fineLimit; s += fineStep {
		c = append(c, s)
	}
	for base := fineLimit; base < maxSmall; base *= 2 {
		for i := 1; i <= perDouble; i++ {
			c = append(c, base+base/perDouble*i)
		}
	}
	return c
}()

var nClasses = len(classSizes)

// classOf returns the smallest class whose chunks hold n bytes (n <= maxSmall).
func classOf(n int) int {
	if n <= fineLimit {
		return (max(n, 1) - 1) / fineStep
	}
	k := bits.Len(uint(n-1)) - 1 // 1<<k < n <= 2<<k
	base := 1 << k
	q := (n - base + base/perDouble - 1) / (base / perDouble) // 1..perDouble
	return fineLimit/fineStep + (k-bits.Len(fineLimit)+1)*perDouble + q - 1
}

// zeroes is what a reused chunk is cleared from.
var zeroes [maxSmall]byte

// slabHeap is the state the caches share: the spans carved so far, each
// class's current span, the large blocks and the free runs. Its mutex
// serialises them, which is rare; the Go fields cache the header (written
// through).
type slabHeap struct {
	sp       *cow.Space
	meta     cow.Addr // the heap header
	caches   cow.Addr
	nCaches  int
	desc     cow.Addr
	spans    cow.Addr
	maxSpans uint64

	mu sync.Mutex
	// +checklocks:mu
	top uint64
	// +checklocks:mu
	freeRuns cow.Addr
	// +checklocks:mu
	cls []spanRange
}

// spanRange is a range of chunks not yet handed out: [bump, end).
type spanRange struct{ bump, end cow.Addr }

// slabCache is one shard's allocator over the heap. Its owner serialises
// calls (the shard's lock); cls caches its page, written through.
type slabCache struct {
	h   *slabHeap
	at  cow.Addr
	cls []classState
}

type classState struct {
	free cow.Addr // the first free chunk
	spanRange
}

// slabMetaBytes is the length of the meta region for these geometries.
func slabMetaBytes(ps, nCaches int, maxSpans uint64) uint64 {
	return roundUp(uint64(ps)*uint64(1+nCaches)+4*maxSpans, uint64(ps))
}

// newSlab maps the regions of a slab with room for spanBytes and nCaches
// caches and writes its empty state. The root is the meta region.
func newSlab(sp *cow.Space, spanBytes uint64, nCaches int) (*slabHeap, error) {
	ps := sp.PageSize()
	maxSpans := max(roundUp(spanBytes, spanSize)/spanSize, 1)
	metaLen := slabMetaBytes(ps, nCaches, maxSpans)
	rw := cow.ProtRead | cow.ProtWrite
	meta, err := sp.Map(int(metaLen), rw)
	if err != nil {
		return nil, err
	}
	spans, err := sp.Map(int(maxSpans*spanSize), rw)
	if err != nil {
		sp.Unmap(meta, int(metaLen))
		return nil, err
	}
	h := &slabHeap{sp: sp, meta: meta, caches: meta + cow.Addr(ps), nCaches: nCaches,
		desc: meta + cow.Addr(ps*(1+nCaches)), spans: spans, maxSpans: maxSpans}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cls = make([]spanRange, nClasses)
	b := make([]byte, hpLen)
	h.encodeHeader(b)
	if _, err := sp.WriteAt(b, int64(meta)); err != nil {
		return nil, err
	}
	return h, nil
}

// encodeHeader encodes the fixed part of the heap header.
//
// +checklocks:h.mu
func (h *slabHeap) encodeHeader(b []byte) {
	le := binary.LittleEndian
	copy(b[hpMagic:], slabMagic)
	le.PutUint64(b[hpMaxSpans:], h.maxSpans)
	le.PutUint64(b[hpTop:], h.top)
	le.PutUint64(b[hpFreeRuns:], uint64(h.freeRuns))
	le.PutUint64(b[hpCaches:], uint64(h.caches))
	le.PutUint64(b[hpNCaches:], uint64(h.nCaches))
	le.PutUint64(b[hpDesc:], uint64(h.desc))
	le.PutUint64(b[hpSpans:], uint64(h.spans))
}

// readClasses reads the classes' current spans from the header.
//
// +checklocks:h.mu
func (h *slabHeap) readClasses() error {
	b := make([]byte, 16*nClasses)
	if _, err := h.sp.ReadAt(b, int64(h.meta)+hpClasses); err != nil {
		return err
	}
	h.cls = make([]spanRange, nClasses)
	for k := range h.cls {
		h.cls[k] = spanRange{cow.Addr(binary.LittleEndian.Uint64(b[16*k:])), cow.Addr(binary.LittleEndian.Uint64(b[16*k+8:]))}
	}
	return nil
}

// metaLen and spansLen are the lengths of the two regions.
func (h *slabHeap) metaLen() uint64  { return slabMetaBytes(h.sp.PageSize(), h.nCaches, h.maxSpans) }
func (h *slabHeap) spansLen() uint64 { return h.maxSpans * spanSize }

// reset empties the slab: both regions are mapped afresh (their pages go
// back to the arena once no snapshot shares them). The caller holds every
// cache's owner lock.
func (h *slabHeap) reset() error {
	rw := cow.ProtRead | cow.ProtWrite
	if err := h.sp.MapFixed(h.spans, int(h.spansLen()), rw); err != nil {
		return err
	}
	if err := h.sp.MapFixed(h.meta, int(h.metaLen()), rw); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.top, h.freeRuns = 0, 0
	clear(h.cls)
	b := make([]byte, hpLen)
	h.encodeHeader(b)
	_, err := h.sp.WriteAt(b, int64(h.meta))
	return err
}

// cache returns cache i, its state read from the space.
func (h *slabHeap) cache(i int) (*slabCache, error) {
	c := &slabCache{h: h, at: h.caches + cow.Addr(i*h.sp.PageSize()), cls: make([]classState, nClasses)}
	b := make([]byte, nClasses*classStride)
	if _, err := h.sp.ReadAt(b, int64(c.at)); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	for k := range c.cls {
		o := k * classStride
		c.cls[k] = classState{cow.Addr(le.Uint64(b[o:])), spanRange{cow.Addr(le.Uint64(b[o+8:])), cow.Addr(le.Uint64(b[o+16:]))}}
	}
	return c, nil
}

// writeClass writes class k's state through to the cache page.
func (c *slabCache) writeClass(k int) error {
	var b [classStride]byte
	st := c.cls[k]
	binary.LittleEndian.PutUint64(b[0:], uint64(st.free))
	binary.LittleEndian.PutUint64(b[8:], uint64(st.bump))
	binary.LittleEndian.PutUint64(b[16:], uint64(st.end))
	_, err := c.h.sp.WriteAt(b[:], int64(c.at)+int64(k*classStride))
	return err
}

// Alloc implements allocator.
func (c *slabCache) Alloc(n int) (cow.Addr, error) {
	switch {
	case n <= 0:
		return 0, fmt.Errorf("%w: allocating %d bytes", cow.ErrInvalid, n)
	case n > maxSmall:
		return c.h.allocLarge(n)
	}
	k := classOf(n)
	size := cow.Addr(classSizes[k])
	st := &c.cls[k]
	if addr := st.free; addr != 0 {
		next, err := readU64(c.h.sp, addr)
		if err != nil {
			return 0, err
		}
		// Clear the chunk first: if that fails, it stays on the list.
		if _, err := c.h.sp.WriteAt(zeroes[:size], int64(addr)); err != nil {
			return 0, err
		}
		st.free = cow.Addr(next)
		return addr, c.writeClass(k)
	}
	if st.bump+size > st.end {
		r, err := c.h.refill(k)
		if err != nil {
			return 0, err
		}
		st.spanRange = r
	}
	addr := st.bump
	st.bump += size
	return addr, c.writeClass(k)
}

// Free implements allocator.
func (c *slabCache) Free(addr cow.Addr) error {
	d, span, err := c.h.descOf(addr)
	if err != nil {
		return err
	}
	switch {
	case d&descLarge != 0:
		return c.h.freeLarge(addr, span, uint64(d&descSpanMask))
	case d == descFree || d&(descCont|descFreeRun) != 0 || int(d) > nClasses:
		return fmt.Errorf("%w: freeing %#x, which is not an allocated block", cow.ErrInvalid, addr)
	}
	k := int(d) - 1
	size := cow.Addr(classSizes[k])
	if (addr-span)%size != 0 {
		return fmt.Errorf("%w: freeing %#x, inside a block", cow.ErrInvalid, addr)
	}
	st := &c.cls[k]
	if err := writeU64(c.h.sp, addr, uint64(st.free)); err != nil {
		return err
	}
	st.free = addr
	return c.writeClass(k)
}

// Size implements allocator.
func (c *slabCache) Size(addr cow.Addr) (int, error) {
	d, _, err := c.h.descOf(addr)
	switch {
	case err != nil:
		return 0, err
	case d&descLarge != 0:
		return int(d&descSpanMask) * spanSize, nil
	case d == descFree || d&(descCont|descFreeRun) != 0 || int(d) > nClasses:
		return 0, fmt.Errorf("%w: %#x is not an allocated block", cow.ErrInvalid, addr)
	}
	return classSizes[d-1], nil
}

// descOf returns the descriptor of the span holding addr, and the span.
func (h *slabHeap) descOf(addr cow.Addr) (uint32, cow.Addr, error) {
	if addr < h.spans || uint64(addr-h.spans) >= h.maxSpans*spanSize {
		return 0, 0, fmt.Errorf("%w: %#x is outside the slab", cow.ErrInvalid, addr)
	}
	i := uint64(addr-h.spans) >> spanShift
	var b [4]byte
	if _, err := h.sp.ReadAt(b[:], int64(h.desc)+int64(4*i)); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), h.spans + cow.Addr(i<<spanShift), nil
}

// setDesc writes the descriptors of n spans from span i: first for the
// first, rest for the others.
func (h *slabHeap) setDesc(i, n uint64, first, rest uint32) error {
	b := make([]byte, 4*n)
	binary.LittleEndian.PutUint32(b, first)
	for j := uint64(1); j < n; j++ {
		binary.LittleEndian.PutUint32(b[4*j:], rest)
	}
	_, err := h.sp.WriteAt(b, int64(h.desc)+int64(4*i))
	return err
}

// writeHeader writes the mutable header fields through.
//
// +checklocks:h.mu
func (h *slabHeap) writeHeader() error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], h.top)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.freeRuns))
	_, err := h.sp.WriteAt(b[:], int64(h.meta)+hpTop)
	return err
}

// refill hands a page's worth of chunks of class k to a cache, from the
// class's current span, carving a new one when it is used up.
func (h *slabHeap) refill(k int) (spanRange, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	size := cow.Addr(classSizes[k])
	st := &h.cls[k]
	if st.bump+size > st.end {
		if h.top >= h.maxSpans {
			return spanRange{}, fmt.Errorf("%w: the slab is full (%d spans)", folio.ErrNoMemory, h.maxSpans)
		}
		if err := h.setDesc(h.top, 1, uint32(k+1), 0); err != nil {
			return spanRange{}, err
		}
		span := h.spans + cow.Addr(h.top<<spanShift)
		h.top++
		if err := h.writeHeader(); err != nil {
			return spanRange{}, err
		}
		*st = spanRange{span, span + spanSize/size*size}
	}
	n := max(refillBytes/size, 1)
	r := spanRange{st.bump, min(st.bump+n*size, st.end)}
	st.bump = r.end
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(st.bump))
	binary.LittleEndian.PutUint64(b[8:], uint64(st.end))
	_, err := h.sp.WriteAt(b[:], int64(h.meta)+hpClasses+int64(16*k))
	return r, err
}

// allocLarge returns a run of whole spans for n bytes: the first free run
// that is long enough, else carved from the top. A free run's first bytes
// hold {next run, spans}; they are cleared when it is handed out.
func (h *slabHeap) allocLarge(n int) (cow.Addr, error) {
	nsp := (uint64(n) + spanSize - 1) >> spanShift
	h.mu.Lock()
	defer h.mu.Unlock()
	link := h.meta + hpFreeRuns
	for run := h.freeRuns; run != 0; {
		var b [16]byte
		if _, err := h.sp.ReadAt(b[:], int64(run)); err != nil {
			return 0, err
		}
		next, have := cow.Addr(binary.LittleEndian.Uint64(b[:])), binary.LittleEndian.Uint64(b[8:])
		if have < nsp {
			link, run = run, next
			continue
		}
		i := uint64(run-h.spans) >> spanShift
		if have > nsp { // the rest stays a free run, in this one's place
			rest := run + cow.Addr(nsp<<spanShift)
			binary.LittleEndian.PutUint64(b[8:], have-nsp)
			if _, err := h.sp.WriteAt(b[:], int64(rest)); err != nil {
				return 0, err
			}
			if err := h.setDesc(i+nsp, 1, descFreeRun|uint32(have-nsp), 0); err != nil {
				return 0, err
			}
			next = rest
		}
		if _, err := h.sp.WriteAt(zeroes[:16], int64(run)); err != nil {
			return 0, err
		}
		if err := h.setDesc(i, nsp, descLarge|uint32(nsp), descCont); err != nil {
			return 0, err
		}
		if err := writeU64(h.sp, link, uint64(next)); err != nil {
			return 0, err
		}
		if link == h.meta+hpFreeRuns {
			h.freeRuns = next
		}
		return run, nil
	}
	if h.top+nsp > h.maxSpans || nsp > descSpanMask {
		return 0, fmt.Errorf("%w: no room for a block of %d bytes in the slab", folio.ErrNoMemory, n)
	}
	if err := h.setDesc(h.top, nsp, descLarge|uint32(nsp), descCont); err != nil {
		return 0, err
	}
	run := h.spans + cow.Addr(h.top<<spanShift)
	h.top += nsp
	return run, h.writeHeader()
}

// freeLarge gives a large block's pages back to the arena and puts its
// run on the free-run list.
func (h *slabHeap) freeLarge(addr, span cow.Addr, nsp uint64) error {
	if addr != span {
		return fmt.Errorf("%w: freeing %#x, inside a block", cow.ErrInvalid, addr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.sp.Advise(addr, int(nsp<<spanShift), cow.DontNeed); err != nil {
		return err
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(h.freeRuns))
	binary.LittleEndian.PutUint64(b[8:], nsp)
	if _, err := h.sp.WriteAt(b[:], int64(addr)); err != nil {
		return err
	}
	i := uint64(addr-h.spans) >> spanShift
	if err := h.setDesc(i, nsp, descFreeRun|uint32(nsp), descFree); err != nil {
		return err
	}
	h.freeRuns = addr
	return h.writeHeader()
}

// usedBytes is the bytes of spans carved so far (free runs included).
func (h *slabHeap) usedBytes() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int64(h.top) * spanSize
}
