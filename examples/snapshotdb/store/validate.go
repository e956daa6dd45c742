package store

import (
	"bytes"
	"encoding/binary"
)

// maxProbeWork bounds the probing validate does, per index slot: a linear
// probing table at most 3/4 full probes a few slots per key on average, so
// only a crafted index comes near it.
const maxProbeWork = 64

// validate checks a loaded index and slab against m: every live slot names
// a chunk inside the slab of the class its item needs, whose key hashes to
// the slot's hash and is reachable by probing from its home slot, with no
// other slot of the same key before it; live and free chunks never overlap
// (which also catches a cycle in a free list); the counts match. After it,
// no operation on the store can read or write outside its chunks.
//
// +checklocks:s.mu
func (s *Store) validate(m *meta) error {
	le := binary.LittleEndian
	idx, err := viewOf(s.sp, s.t.index, m.slots*slotSize, false)
	if err != nil {
		return err
	}
	defer idx.release()
	slab, err := viewOf(s.sp, s.t.slab, m.slabTop, false)
	if err != nil {
		return err
	}
	defer slab.release()
	used := make(chunkMap, (m.slabTop/chunkUnit+63)/64)
	mask := m.slots - 1
	var count, tombs, work uint64
	var key, other []byte
	for i := range m.slots {
		b := idx.at(i * slotSize)
		h, ref := le.Uint64(b), le.Uint64(b[8:])
		switch ref {
		case refEmpty:
			continue
		case refTomb:
			tombs++
			continue
		}
		off, c := refOff(ref), refClass(ref)
		if c >= nClasses || off < chunkUnit || off+classSizes[c] > m.slabTop {
			return corrupt("slot %d: chunk %d of class %d outside the slab", i, off, c)
		}
		var err error
		if key, err = itemKey(slab, off, c, key); err != nil {
			return corrupt("slot %d: %v", i, err)
		}
		if keyHash(m.seed, key) != h {
			return corrupt("slot %d: the key does not hash to the slot's hash", i)
		}
		for p := h & mask; p != i; p = (p + 1) & mask {
			if work++; work > maxProbeWork*m.slots {
				return corrupt("probe sequences too long for the index")
			}
			pb := idx.at(p * slotSize)
			pref := le.Uint64(pb[8:])
			if pref == refEmpty {
				return corrupt("slot %d: unreachable from its home slot %d", i, h&mask)
			}
			if pref != refTomb && le.Uint64(pb) == h {
				if other, err = itemKey(slab, refOff(pref), refClass(pref), other); err == nil && bytes.Equal(key, other) {
					return corrupt("slots %d and %d hold the same key", p, i)
				}
			}
		}
		if !used.mark(off, classSizes[c]) {
			return corrupt("slot %d: chunk %d overlaps another", i, off)
		}
		count++
	}
	if count != m.count || tombs != m.tombs {
		return corrupt("%d keys and %d tombstones in the index, the header says %d and %d", count, tombs, m.count, m.tombs)
	}
	for c, off := range m.freeHead {
		for off != 0 {
			if off%chunkUnit != 0 || off < chunkUnit || off+classSizes[c] > m.slabTop {
				return corrupt("free list %d: chunk %d outside the slab", c, off)
			}
			if !used.mark(off, classSizes[c]) {
				return corrupt("free list %d: chunk %d overlaps another or the list loops", c, off)
			}
			var nb [8]byte
			slab.read(nb[:], off)
			off = le.Uint64(nb[:])
		}
	}
	return nil
}

// itemKey reads the key of the item in the chunk at off of class c into
// buf, checking the item's lengths against the class.
func itemKey(slab *pageView, off uint64, c int, buf []byte) ([]byte, error) {
	if c >= nClasses || off+classSizes[c] > uint64(len(slab.pages))<<slab.shift {
		return buf, corrupt("chunk %d of class %d outside the slab", off, c)
	}
	var ih [itemHdr]byte
	slab.read(ih[:], off)
	klen, vlen := uint64(binary.LittleEndian.Uint32(ih[:])), uint64(binary.LittleEndian.Uint32(ih[4:]))
	if klen > MaxKeyLen || vlen > MaxValueLen || classOf(itemHdr+klen+vlen) != c {
		return buf, corrupt("item of %d+%d bytes in a chunk of class %d", klen, vlen, c)
	}
	if uint64(cap(buf)) < klen {
		buf = make([]byte, klen)
	}
	buf = buf[:klen]
	slab.read(buf, off+itemHdr)
	return buf, nil
}

// chunkMap has a bit per chunkUnit of the slab: the chunks seen so far.
type chunkMap []uint64

// mark marks [off, off+size), reporting false if any of it was marked.
func (cm chunkMap) mark(off, size uint64) bool {
	for u := off / chunkUnit; u < (off+size)/chunkUnit; u++ {
		w, bit := u/64, uint64(1)<<(u%64)
		if cm[w]&bit != 0 {
			return false
		}
		cm[w] |= bit
	}
	return true
}
