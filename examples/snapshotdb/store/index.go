package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/anonfolio/anonfolio/cow"
)

// tables are the index and slab of one space: the store's, or a
// snapshot's (a Fork keeps the addresses).
type tables struct {
	sp    *cow.Space
	index cow.Addr // slots of {hash, ref}
	slab  cow.Addr // chunks
	slots uint64   // a power of two
}

// lookupResult is what a probe found.
type lookupResult struct {
	pos, ref uint64 // the slot holding the key and its reference (if found)
	found    bool
	ins      uint64 // if not found: where an insert goes (first tombstone, else the empty slot)
	insEmpty bool   // ins is an empty slot (not a tombstone)
}

// probeGroup is how many slots a probe reads at once: one cache line.
const probeGroup = 4

// lookup probes for key (whose hash is h) from its home slot. It compares
// the key of each slot of the same hash by reading the chunk into *buf: the
// header and key, or with whole the whole chunk (the value a Get wants).
func (t *tables) lookup(h uint64, key []byte, buf *[]byte, whole bool) (lookupResult, error) {
	le := binary.LittleEndian
	mask := t.slots - 1
	r := lookupResult{ins: ^uint64(0)}
	var grp [probeGroup * slotSize]byte
	pos := h & mask
	for probed := uint64(0); probed < t.slots; {
		k := min(probeGroup, t.slots-pos, t.slots-probed)
		if _, err := t.sp.ReadAt(grp[:k*slotSize], int64(t.index)+int64(pos*slotSize)); err != nil {
			return r, err
		}
		for i := range k {
			sh, ref := le.Uint64(grp[i*slotSize:]), le.Uint64(grp[i*slotSize+8:])
			switch {
			case ref == refEmpty:
				if r.ins == ^uint64(0) {
					r.ins, r.insEmpty = pos+i, true
				}
				return r, nil
			case ref == refTomb:
				if r.ins == ^uint64(0) {
					r.ins = pos + i
				}
			case sh == h:
				ok, err := t.keyIs(ref, key, buf, whole)
				if err != nil {
					return r, err
				}
				if ok {
					r.pos, r.ref, r.found = pos+i, ref, true
					return r, nil
				}
			}
		}
		probed += k
		pos = (pos + k) & mask
	}
	// Every slot probed: the index is kept below 3/4 full, so only a
	// table of tombstones gets here.
	return r, nil
}

// keyIs reads the chunk of ref into *buf and reports whether it holds key.
func (t *tables) keyIs(ref uint64, key []byte, buf *[]byte, whole bool) (bool, error) {
	n := uint64(itemHdr + len(key))
	if whole {
		n = classSizes[refClass(ref)]
	}
	if uint64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	*buf = b
	if _, err := t.sp.ReadAt(b, int64(t.slab)+int64(refOff(ref))); err != nil {
		return false, err
	}
	return binary.LittleEndian.Uint32(b) == uint32(len(key)) && bytes.Equal(b[itemHdr:itemHdr+len(key)], key), nil
}

// appendGet appends the value of key to dst.
func (t *tables) appendGet(dst []byte, h uint64, key []byte) ([]byte, error) {
	// Read the whole chunk straight into dst's spare room (or a new
	// buffer if it is too small), then move the value to its place.
	spare := cap(dst) - len(dst)
	buf := dst[len(dst):cap(dst)]
	l, err := t.lookup(h, key, &buf, true)
	if err != nil {
		return dst, err
	}
	if !l.found {
		return dst, fmt.Errorf("%w: %q", ErrNotFound, trunc(key))
	}
	start := itemHdr + len(key)
	vlen := int(binary.LittleEndian.Uint32(buf[4:]))
	if vlen > len(buf)-start {
		return dst, fmt.Errorf("%w: item of key %q overruns its chunk", ErrCorrupt, trunc(key))
	}
	value := buf[start : start+vlen : start+vlen]
	switch {
	case cap(buf) == spare: // read into dst's room: move the value down
		out := dst[:len(dst)+vlen]
		copy(out[len(dst):], value)
		return out, nil
	case dst == nil: // a new buffer: hand out its value part
		return value, nil
	}
	return append(dst, value...), nil
}

// trunc shortens a key for an error message.
func trunc(key []byte) []byte {
	if len(key) > 64 {
		return key[:64]
	}
	return key
}

// writeSlot writes slot pos: 16 bytes within a page, all or nothing.
func (t *tables) writeSlot(pos, h, ref uint64) error {
	var b [slotSize]byte
	binary.LittleEndian.PutUint64(b[:], h)
	binary.LittleEndian.PutUint64(b[8:], ref)
	_, err := t.sp.WriteAt(b[:], int64(t.index)+int64(pos*slotSize))
	return err
}

// readSlotRef returns the reference in slot pos.
func (t *tables) readSlotRef(pos uint64) (uint64, error) {
	var b [8]byte
	_, err := t.sp.ReadAt(b[:], int64(t.index)+int64(pos*slotSize)+8)
	return binary.LittleEndian.Uint64(b[:]), err
}
