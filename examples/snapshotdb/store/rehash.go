package store

import (
	"encoding/binary"

	"github.com/anonfolio/anonfolio/cow"
)

// grow rehashes the index into a new one sized for the keys plus one at a
// load of at most one half (never smaller: a rehash at the same size purges
// the tombstones).
//
// Holding mu keeps Snapshot's Fork out while the new index is pinned.
//
// +checklocks:s.mu
func (s *Store) grow() error {
	slots := max(indexSlotsFor(int(s.m.count+1)), s.m.slots)
	if (s.m.count+1)*2 > s.m.slots {
		slots = max(slots, 2*s.m.slots)
	}
	return s.rehash(slots)
}

// rehash moves every key into a new index of slots slots. It reads the old
// index and fills the new one in place, through pins: no ReadAt or WriteAt
// per slot. On failure the store is unchanged.
//
// +checklocks:s.mu
func (s *Store) rehash(slots uint64) error {
	n := s.indexBytes(slots)
	addr, err := s.sp.Map(int(n), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return err
	}
	dst, err := viewOf(s.sp, addr, n, true)
	if err != nil {
		s.sp.Unmap(addr, int(n))
		return err
	}
	src, err := viewOf(s.sp, s.t.index, s.m.slots*slotSize, false)
	if err != nil {
		dst.release()
		s.sp.Unmap(addr, int(n))
		return err
	}
	le := binary.LittleEndian
	mask := slots - 1
	for i := range s.m.slots {
		b := src.at(i * slotSize)
		h, ref := le.Uint64(b), le.Uint64(b[8:])
		if ref == refEmpty || ref == refTomb {
			continue
		}
		pos := h & mask
		for le.Uint64(dst.at(pos * slotSize)[8:]) != refEmpty {
			pos = (pos + 1) & mask
		}
		d := dst.at(pos * slotSize)
		le.PutUint64(d, h)
		le.PutUint64(d[8:], ref)
	}
	src.release()
	dst.release()
	s.sp.Unmap(s.t.index, int(s.indexBytes(s.m.slots)))
	s.t.index, s.t.slots = addr, slots
	s.m.slots, s.m.tombs = slots, 0
	return nil
}
