package slab

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"

	"github.com/anonfolio/anonfolio/cow"
)

// The reservation. New maps one region of (classes+1) × ClassReserve bytes;
// its start is the root. Area 0 holds the header; area c+1 belongs to class
// c and is cut into chunks of a power of two of bytes (2 MiB, or eight
// blocks for blocks above 256 KiB). A chunk holds its blocks back to back
// from its start, so power-of-two blocks are aligned to their size, and
// its metadata in its last pages:
//
//	blocks               k blocks of the class's size
//	(slack)
//	class word           8 bytes, alone in its cache line (used in chunk 0 only)
//	slab descriptors     descBytes per slab of the chunk: the bitmap, the next link
//
// Metadata next to the blocks it describes shares their page-table leaf
// (and their folio, in a space of large folios). A block's class, slab and
// bit follow from its address by arithmetic, so Free and Size look nothing
// up before they take the class lock.
const (
	magic      = "ANFSLAB\x00"
	version    = 1
	headerLen  = 64 // magic, version, length, page size, classes, reserve shift, root, reserve, byte order, CRC
	slabBlocks = 64 // blocks per slab: one bitmap word
	descBytes  = 16 // a slab descriptor: bitmap word, next word
	classHdr   = 64 // the class word's cache line

	// byteOrderMark is stored in native byte order: an image moved to a
	// machine of the other byte order fails Open instead of misreading
	// every metadata word.
	byteOrderMark = 0x0102030405060708

	defaultClassReserve = 16 << 30
	minClassReserve     = 2 << 20
	maxClassReserve     = 64 << 30
)

// The class word: the head of the partial list (slab number + 1, 0 if the
// list is empty), the number of the next slab to carve (every valid slab
// number below it is carved), and the busy bit, set while a change of the
// list is half done (see repairLocked).
const (
	headMask   = 1<<32 - 1
	slabsShift = 32
	slabsMask  = 1<<31 - 1
	busyBit    = 1 << 63
)

func classWord(head, slabs uint64) uint64 { return head | slabs<<slabsShift }
func wordHead(w uint64) uint64            { return w & headMask }
func wordSlabs(w uint64) uint64           { return w >> slabsShift & slabsMask }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// geometry is an allocator's layout: fixed at New, read back from the
// header by Open, never changed.
type geometry struct {
	root    cow.Addr
	ps      uint64 // the space's page size
	shift   uint   // log2 of ClassReserve: an address's area is (addr-root) >> shift
	reserve uint64 // bytes of the reservation
	classes []classGeo
}

// divisor divides by d > 1 with a multiplication: x/d is the high word of
// x*m for m = floor((2^64-1)/d)+1, exactly when x*d < 2^64 (x*m/2^64
// exceeds x/d by less than x/2^64, which is then below 1/d). Offsets in a
// chunk and slab numbers are far inside that bound except for the largest
// classes, which divide in hardware.
type divisor struct{ d, m, lim uint64 }

func newDivisor(d uint64) divisor { return divisor{d, (1<<64-1)/d + 1, (1<<64 - 1) / d} }

func (v divisor) div(x uint64) uint64 {
	if x >= v.lim || v.d == 1 {
		return x / v.d
	}
	hi, _ := bits.Mul64(x, v.m)
	return hi
}

// classGeo is where one class keeps its blocks and state, and its bounds.
// Slab numbers have the chunk in their high bits: slab s is slab
// s&(1<<perShift-1) of chunk s>>perShift, and the numbers whose low part
// is perChunk or more stand for no slab (carving skips them).
type classGeo struct {
	size       uint64   // bytes of each block
	bySize     divisor  // divides by size
	area       cow.Addr // chunk 0
	word       cow.Addr // the class word
	chunkShift uint     // log2 of the chunk's bytes
	blocks     uint64   // blocks per chunk
	perChunk   uint64   // slabs per chunk (the last may be short)
	perShift   uint     // bits of a slab number below its chunk: perChunk <= 1<<perShift
	meta       uint64   // offset in a chunk of its metadata (the class word's line)
	slabLimit  uint64   // slab numbers are below it: the area's chunks << perShift
	large      bool     // blocks of whole pages, given back to the arena on free
}

func newGeometry(root cow.Addr, ps uint64, shift uint) geometry {
	g := geometry{root: root, ps: ps, shift: shift, reserve: reserveBytes(shift)}
	g.classes = make([]classGeo, numClasses(uint64(1)<<shift/8))
	for c := range g.classes {
		size := classSize(c)
		cs := max(uint(21), uint(bits.Len64(8*size-1))) // 2 MiB, or 8 blocks rounded up
		chunk := uint64(1) << cs
		// Room for the descriptors of as many slabs as a chunk could hold,
		// rounded to pages: the blocks never share a page with metadata.
		slabs := (chunk/size + slabBlocks - 1) / slabBlocks
		meta := chunk - (classHdr+slabs*descBytes+ps-1)&^(ps-1)
		k := meta / size
		per := (k + slabBlocks - 1) / slabBlocks
		pshift := uint(bits.Len64(per - 1))
		area := root + cow.Addr(uint64(c+1)<<shift)
		g.classes[c] = classGeo{
			size:       size,
			bySize:     newDivisor(size),
			area:       area,
			word:       area + cow.Addr(meta),
			chunkShift: cs,
			blocks:     k,
			perChunk:   per,
			perShift:   pshift,
			meta:       meta,
			slabLimit:  uint64(1) << (shift - cs + pshift),
			large:      size >= 8*ps,
		}
	}
	return g
}

// reserveBytes is the size of the reservation: an area for the header and
// one per class, of 1<<shift bytes each.
func reserveBytes(shift uint) uint64 { return uint64(numClasses(uint64(1)<<shift/8)+1) << shift }

// maxSize is the largest block the allocator hands out.
func (g *geometry) maxSize() uint64 { return g.classes[len(g.classes)-1].size }

// chunk returns the address of chunk i.
func (cg *classGeo) chunk(i uint64) cow.Addr { return cg.area + cow.Addr(i<<cg.chunkShift) }

// slabDesc returns the address of slab s's descriptor: its bitmap word;
// the next link follows. s must be valid.
func (cg *classGeo) slabDesc(s uint64) cow.Addr {
	chunk, i := cg.split(s)
	return cg.chunk(chunk) + cow.Addr(cg.meta+classHdr+i*descBytes)
}

// split returns the chunk of slab s and its index in the chunk.
func (cg *classGeo) split(s uint64) (chunk, i uint64) {
	return s >> cg.perShift, s & (1<<cg.perShift - 1)
}

// valid reports whether s is the number of a slab (carved or not).
func (cg *classGeo) valid(s uint64) bool {
	_, i := cg.split(s)
	return s < cg.slabLimit && i < cg.perChunk
}

// nextSlab returns the first slab number from s on that stands for a slab.
func (cg *classGeo) nextSlab(s uint64) uint64 {
	if chunk, i := cg.split(s); i >= cg.perChunk {
		return (chunk + 1) << cg.perShift
	}
	return s
}

// blockAddr returns the address of block bit of slab s.
func (cg *classGeo) blockAddr(s, bit uint64) cow.Addr {
	chunk, i := cg.split(s)
	return cg.chunk(chunk) + cow.Addr((i*slabBlocks+bit)*cg.size)
}

// slabBytes returns the address range of slab s's blocks.
func (cg *classGeo) slabBytes(s uint64) (start, end uint64) {
	chunk, i := cg.split(s)
	base := uint64(cg.chunk(chunk))
	return base + i*slabBlocks*cg.size, base + min((i+1)*slabBlocks, cg.blocks)*cg.size
}

// reserved returns the bits of slab s's bitmap that stand for no block:
// the tail of a chunk's last slab when its blocks do not fill it. They are
// set for good when the slab is carved, so a full slab is always ^0.
func (cg *classGeo) reserved(s uint64) uint64 {
	_, i := cg.split(s)
	if n := cg.blocks - i*slabBlocks; n < slabBlocks {
		return ^uint64(0) << n
	}
	return 0
}

// encodeHeader returns the header New writes at the root.
func (g *geometry) encodeHeader() []byte {
	b := make([]byte, headerLen)
	le := binary.LittleEndian
	copy(b, magic)
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], headerLen)
	le.PutUint32(b[16:], uint32(g.ps))
	le.PutUint32(b[20:], uint32(len(g.classes)))
	le.PutUint32(b[24:], uint32(g.shift))
	le.PutUint64(b[32:], uint64(g.root))
	le.PutUint64(b[40:], g.reserve)
	binary.NativeEndian.PutUint64(b[48:], byteOrderMark)
	le.PutUint32(b[56:], crc32.Checksum(b[:56], castagnoli))
	return b
}

// decodeHeader checks the header read at root in a space of ps-byte pages
// and returns the geometry it describes.
func decodeHeader(b []byte, root cow.Addr, ps uint64) (geometry, error) {
	le := binary.LittleEndian
	if len(b) < headerLen || string(b[:8]) != magic {
		return geometry{}, fmt.Errorf("%w at %#x: bad magic %q", ErrNotAllocator, uint64(root), b[:min(len(b), 8)])
	}
	if got, want := le.Uint32(b[56:]), crc32.Checksum(b[:56], castagnoli); got != want {
		return geometry{}, corrupt("header at %#x: checksum %#08x, want %#08x", uint64(root), got, want)
	}
	if v := le.Uint32(b[8:]); v != version {
		return geometry{}, fmt.Errorf("%w: the allocator at %#x has layout version %d, this package reads %d", ErrVersion, uint64(root), v, version)
	}
	shift := uint(le.Uint32(b[24:]))
	switch {
	case le.Uint32(b[12:]) != headerLen:
		return geometry{}, corrupt("header at %#x: length %d, want %d", uint64(root), le.Uint32(b[12:]), headerLen)
	case binary.NativeEndian.Uint64(b[48:]) != byteOrderMark:
		return geometry{}, corrupt("header at %#x: written on a machine of the other byte order", uint64(root))
	case uint64(le.Uint32(b[16:])) != ps:
		return geometry{}, corrupt("header at %#x: made for %d-byte pages, the space has %d", uint64(root), le.Uint32(b[16:]), ps)
	case le.Uint64(b[32:]) != uint64(root):
		return geometry{}, corrupt("header at %#x says its root is %#x", uint64(root), le.Uint64(b[32:]))
	case shift < uint(bits.TrailingZeros64(minClassReserve)) || shift > uint(bits.TrailingZeros64(maxClassReserve)):
		return geometry{}, corrupt("header at %#x: class reserve of 2^%d bytes", uint64(root), shift)
	}
	g := newGeometry(root, ps, shift)
	if n := le.Uint32(b[20:]); n != uint32(len(g.classes)) || le.Uint64(b[40:]) != g.reserve {
		return geometry{}, corrupt("header at %#x: %d classes in %d bytes, want %d in %d",
			uint64(root), n, le.Uint64(b[40:]), len(g.classes), g.reserve)
	}
	return g, nil
}
