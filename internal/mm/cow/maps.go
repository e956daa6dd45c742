package cow

import (
	"encoding/binary"
	"hash/fnv"
)

// Region describes one region of a space, as a line of /proc/self/maps
// does: where it is, its protection and its fork advice.
type Region struct {
	Addr       Addr // first address
	Length     int  // bytes, a multiple of the page size
	Prot       Prot
	DontFork   bool // advised DontFork: a Fork's child does not inherit it
	WipeOnFork bool // advised WipeOnFork: a Fork's child inherits it empty
}

// End returns the address just past the region.
func (r Region) End() Addr { return r.Addr + Addr(r.Length) }

// String formats the region like a line of /proc/self/maps:
// "100000000-100200000 rw dontfork".
func (r Region) String() string {
	return region{start: r.Addr, end: r.End(), prot: r.Prot, flags: r.regionFlags()}.String()
}

func (r Region) regionFlags() regionFlags {
	var f regionFlags
	if r.DontFork {
		f |= dontFork
	}
	if r.WipeOnFork {
		f |= wipeOnFork
	}
	return f
}

// Regions returns the space's regions in address order (/proc/self/maps).
// Adjacent regions always differ in protection or advice: equal neighbours
// are one region. A closed space has none.
func (s *Space) Regions() []Region {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	out := make([]Region, len(s.regions))
	for i, r := range s.regions {
		out[i] = Region{Addr: r.start, Length: int(r.end - r.start), Prot: r.prot,
			DontFork: r.flags&dontFork != 0, WipeOnFork: r.flags&wipeOnFork != 0}
	}
	return out
}

// regionsDigestLocked returns a digest of the regions: equal region lists
// have equal digests, and a change of any region (its range, protection or
// advice) changes it but for a 64-bit collision.
//
// +checklocksread:s.mapLock
func (s *Space) regionsDigestLocked() uint64 {
	h := fnv.New64a()
	var b [18]byte
	for _, r := range s.regions {
		binary.LittleEndian.PutUint64(b[0:], uint64(r.start))
		binary.LittleEndian.PutUint64(b[8:], uint64(r.end))
		b[16], b[17] = byte(r.prot), byte(r.flags)
		h.Write(b[:])
	}
	return h.Sum64()
}
