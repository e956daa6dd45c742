package store

import (
	"encoding/binary"
	"fmt"

	"github.com/anonfolio/anonfolio/folio"
)

// allocChunk returns the slab offset of a free chunk of class: the head of
// the class's free list, else carved from the top.
//
// +checklocks:s.mu
func (s *Store) allocChunk(class int) (uint64, error) {
	if off := s.m.freeHead[class]; off != 0 {
		var b [8]byte
		if _, err := s.sp.ReadAt(b[:], int64(s.t.slab)+int64(off)); err != nil {
			return 0, err
		}
		s.m.freeHead[class] = binary.LittleEndian.Uint64(b[:])
		return off, nil
	}
	size := classSizes[class]
	off := s.m.slabTop
	if off+size > s.slabLimit {
		return 0, fmt.Errorf("%w: the slab is full (%d bytes)", folio.ErrNoMemory, s.slabLimit)
	}
	s.m.slabTop += size
	return off, nil
}

// freeChunk gives the chunk at off back: to the top if it is the last one,
// else to its class's free list. Linking it writes into it, which may have
// to copy a page a snapshot shares; if even that fails the chunk is leaked
// and counted, the store stays consistent.
//
// +checklocks:s.mu
func (s *Store) freeChunk(off uint64, class int) {
	size := classSizes[class]
	if off+size == s.m.slabTop {
		s.m.slabTop = off
		return
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], s.m.freeHead[class])
	if _, err := s.sp.WriteAt(b[:], int64(s.t.slab)+int64(off)); err != nil {
		s.leaked += size
		return
	}
	s.m.freeHead[class] = off
}
