package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
)

// Limits on keys and values (Redis's proto-max-bulk-len is 512 MiB too).
const (
	MaxKeyLen   = 1 << 20
	MaxValueLen = 512 << 20
)

const (
	slotSize  = 16 // {hash uint64, ref uint64}
	itemHdr   = 8  // {klen uint32, vlen uint32}
	chunkUnit = 16 // chunks are multiples of it, and so aligned to it

	refEmpty = 0 // a slot never used
	refTomb  = 1 // a slot whose item was deleted: probing goes on past it

	minIndexSlots = 64
	maxIndexSlots = 1 << 40
)

// Size classes: chunkUnit steps up to 128 bytes, then four classes per
// doubling up to the largest item, so a chunk wastes at most a fifth.
var classSizes = func() []uint64 {
	var c []uint64
	for s := uint64(chunkUnit); s <= 128; s += chunkUnit {
		c = append(c, s)
	}
	for base := uint64(128); c[len(c)-1] < itemHdr+MaxKeyLen+MaxValueLen; base *= 2 {
		for i := uint64(1); i <= 4; i++ {
			c = append(c, base+base/4*i)
		}
	}
	return c
}()

// nClasses is how many size classes there are (and free lists).
var nClasses = len(classSizes)

// classOf returns the smallest class whose chunks hold size bytes.
func classOf(size uint64) int {
	if size <= 128 {
		return int((max(size, 1) - 1) / chunkUnit)
	}
	// Above 128: base = 2^k with base < size <= 2*base, then quarter steps.
	k := bits.Len64(size-1) - 1 // base = 1<<k < size
	base := uint64(1) << k
	q := (size - base + base/4 - 1) / (base / 4) // 1..4
	return 8 + (k-7)*4 + int(q) - 1
}

// mkRef encodes a live slot's reference to the chunk at slab offset off.
func mkRef(off uint64, class int) uint64 { return off/chunkUnit<<8 | uint64(class) }

// refOff and refClass decode a live reference.
func refOff(ref uint64) uint64 { return ref >> 8 * chunkUnit }
func refClass(ref uint64) int  { return int(ref & 0xff) }

// The header: the meta page of a space and the first bytes of an image.
const (
	imageMagic   = "ANFKVDB\x00"
	imageVersion = 1
	trailerMagic = "KVEND\x00\x00\x00"

	hdrFixed = 64 // magic, version, header length, classes, pad, seed, counts, geometry
)

// headerLen is the encoded header's length: the fixed part, a free-list
// head per class, and the header's own CRC-32C (padded to 8 bytes).
var headerLen = hdrFixed + 8*nClasses + 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// meta is the store's header: what lives in the meta page. The live store
// keeps it in Go memory and flushes it to the page before each Fork.
type meta struct {
	seed     uint64   // the hash seed
	count    uint64   // live keys
	tombs    uint64   // tombstones in the index
	slots    uint64   // index slots, a power of two
	slabTop  uint64   // the bump pointer: bytes of slab in use, free chunks included
	freeHead []uint64 // per class: the slab offset of the first free chunk, 0 if none
}

func newMeta(seed, slots uint64) meta {
	return meta{seed: seed, slots: slots, slabTop: chunkUnit, freeHead: make([]uint64, nClasses)}
}

func (m *meta) clone() meta {
	c := *m
	c.freeHead = append([]uint64(nil), m.freeHead...)
	return c
}

// encode writes the header into b, which must be headerLen bytes.
func (m *meta) encode(b []byte) {
	le := binary.LittleEndian
	copy(b, imageMagic)
	le.PutUint32(b[8:], imageVersion)
	le.PutUint32(b[12:], uint32(headerLen))
	le.PutUint32(b[16:], uint32(nClasses))
	le.PutUint32(b[20:], 0)
	le.PutUint64(b[24:], m.seed)
	le.PutUint64(b[32:], m.count)
	le.PutUint64(b[40:], m.tombs)
	le.PutUint64(b[48:], m.slots)
	le.PutUint64(b[56:], m.slabTop)
	for i, h := range m.freeHead {
		le.PutUint64(b[hdrFixed+8*i:], h)
	}
	end := headerLen - 8
	le.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	le.PutUint32(b[end+4:], 0)
}

// decodeMeta parses and checks a header: its magic, version, CRC and the
// bounds of its geometry (limit bounds the slab).
func decodeMeta(b []byte, limit uint64) (meta, error) {
	le := binary.LittleEndian
	var m meta
	switch {
	case len(b) < hdrFixed || string(b[:8]) != imageMagic:
		return m, corrupt("not an image: bad magic")
	case le.Uint32(b[8:]) != imageVersion:
		return m, corrupt("version %d, want %d", le.Uint32(b[8:]), imageVersion)
	case le.Uint32(b[12:]) != uint32(headerLen) || le.Uint32(b[16:]) != uint32(nClasses) || len(b) < headerLen:
		return m, corrupt("header length %d with %d classes, want %d and %d",
			le.Uint32(b[12:]), le.Uint32(b[16:]), headerLen, nClasses)
	}
	end := headerLen - 8
	if got, want := le.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); got != want {
		return m, corrupt("header checksum %#08x, want %#08x", got, want)
	}
	m = meta{
		seed: le.Uint64(b[24:]), count: le.Uint64(b[32:]), tombs: le.Uint64(b[40:]),
		slots: le.Uint64(b[48:]), slabTop: le.Uint64(b[56:]), freeHead: make([]uint64, nClasses),
	}
	for i := range m.freeHead {
		m.freeHead[i] = le.Uint64(b[hdrFixed+8*i:])
	}
	switch {
	case m.slots < minIndexSlots || m.slots > maxIndexSlots || m.slots&(m.slots-1) != 0:
		return m, corrupt("index of %d slots", m.slots)
	case m.count+m.tombs >= m.slots || m.count > m.slots || m.tombs > m.slots:
		return m, corrupt("%d keys and %d tombstones in %d slots", m.count, m.tombs, m.slots)
	case m.slabTop < chunkUnit || m.slabTop%chunkUnit != 0 || m.slabTop > limit:
		return m, corrupt("slab of %d bytes (at most %d)", m.slabTop, limit)
	}
	for c, h := range m.freeHead {
		if h != 0 && (h%chunkUnit != 0 || h < chunkUnit || h+classSizes[c] > m.slabTop) {
			return m, corrupt("free list %d starts at %d, outside the slab", c, h)
		}
	}
	return m, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
