package store

import (
	"encoding/binary"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/pin"
)

// The image: the store's regions as they are in memory. This and load.go
// are the seam where the snapshot package (issue 15) will take over, with
// its incremental images; the store will keep only its Quiesce.
//
//	header   "ANFKVIMG", version uint32, regions uint32, then per region
//	         {address, reserved length, stored length} as uint64s, then the
//	         CRC-32C of the header so far (uint32) and 4 zero bytes
//	body     the stored bytes of each region, in order
//	trailer  the CRC-32C of header and body (uint32), 4 zero bytes, "KVEND\0\0\0"
//
// The regions are the root (superblock and shard headers), the slab's meta
// region and its spans up to the last one carved. Load maps each at its
// address, so that every pointer in them stays valid.
const (
	imageMagic   = "ANFKVIMG"
	imageVersion = 2
	trailerMagic = "KVEND\x00\x00\x00"
	maxRegions   = 16
	regionEntry  = 24
	trailerLen   = 16

	// retainFree bounds the free memory a save or a collapse leaves resident.
	retainFree = 16 << 20
)

// region is one region of an image.
type region struct {
	addr     cow.Addr
	reserved uint64 // the length mapped
	stored   uint64 // the length in the image, from addr on
}

func imageHeaderLen(n int) int { return 16 + regionEntry*n + 8 }

func encodeImageHeader(regions []region) []byte {
	le := binary.LittleEndian
	b := make([]byte, imageHeaderLen(len(regions)))
	copy(b, imageMagic)
	le.PutUint32(b[8:], imageVersion)
	le.PutUint32(b[12:], uint32(len(regions)))
	for i, r := range regions {
		o := 16 + regionEntry*i
		le.PutUint64(b[o:], uint64(r.addr))
		le.PutUint64(b[o+8:], r.reserved)
		le.PutUint64(b[o+16:], r.stored)
	}
	end := len(b) - 8
	le.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	return b
}

// regions returns the regions of the snapshot's image.
func (sn *Snapshot) regions() ([]region, error) {
	ps := uint64(sn.sb.pageSize)
	var b [hpLen]byte
	if _, err := sn.sp.ReadAt(b[:], int64(sn.sb.slab)); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	maxSpans, top, nCaches := le.Uint64(b[hpMaxSpans:]), le.Uint64(b[hpTop:]), le.Uint64(b[hpNCaches:])
	meta := slabMetaBytes(int(ps), int(nCaches), maxSpans)
	root := (1 + uint64(len(sn.dicts))) * ps
	return []region{
		{sn.st.root, root, root},
		{sn.sb.slab, meta, meta},
		{cow.Addr(le.Uint64(b[hpSpans:])), maxSpans * spanSize, top * spanSize},
	}, nil
}

// WriteTo writes the snapshot's image to w. It implements io.WriterTo.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	if sn.sp.Closed() {
		return 0, ErrClosed
	}
	return sn.stream(w, false, nil)
}

// stream writes the image to w. With drop it unmaps each window of the
// snapshot once written: the store's later writes to those pages then
// reuse them instead of copying (and the pages only the snapshot held go
// back to the arena), which is what a Save wants and a view cannot do.
// progress, if not nil, is called after each window with the bytes
// written.
func (sn *Snapshot) stream(w io.Writer, drop bool, progress func(int64)) (int64, error) {
	regions, err := sn.regions()
	if err != nil {
		return 0, err
	}
	out := imageWriter{w: w, crc: crc32.New(castagnoli)}
	if err := out.write(encodeImageHeader(regions)); err != nil {
		return out.n, err
	}
	sp := sn.sp
	ps := uint64(sp.PageSize())
	window := ps * ps / 8 // what one page-table leaf maps
	for _, r := range regions {
		for off := uint64(0); off < r.stored; off += window {
			n := min(window, r.stored-off)
			// pin.Get, not pin.Pin: a read-only Pin makes each page
			// exclusive to the snapshot first (FAULT_FLAG_UNSHARE), which
			// copies every page the store still shares, the whole image.
			// A plain reference copies nothing; it only stops the store
			// from reusing a page under it, and the store cannot reuse a
			// page the snapshot maps anyway. Nobody writes the snapshot,
			// so the bytes cannot change while they are written out.
			p, err := pin.Get(sp, r.addr+cow.Addr(off), int(n), 0)
			if err != nil {
				return out.n, err
			}
			for _, b := range p.Bytes() {
				if err := out.write(b); err != nil {
					p.Release()
					return out.n, err
				}
			}
			p.Release()
			if drop {
				if err := sp.Unmap(r.addr+cow.Addr(off), int(roundUp(n, ps))); err != nil {
					return out.n, err
				}
			}
			if progress != nil {
				progress(out.n)
			}
		}
	}
	var tr [trailerLen]byte
	binary.LittleEndian.PutUint32(tr[:], out.crc.Sum32())
	copy(tr[8:], trailerMagic)
	if _, err := w.Write(tr[:]); err != nil {
		return out.n, err
	}
	return out.n + trailerLen, nil
}

// imageWriter writes to w and checksums what it writes.
type imageWriter struct {
	w   io.Writer
	crc hash.Hash32
	n   int64
}

func (iw *imageWriter) write(b []byte) error {
	iw.crc.Write(b)
	n, err := iw.w.Write(b)
	iw.n += int64(n)
	return err
}

// Save writes an image of the store to w while the store goes on taking
// writes: it takes a Snapshot (the writers wait for the quiesce and the
// Fork only), streams the child's memory without copying it, and closes
// the child. Only one save runs at a time (ErrSaveInProgress). Stats
// reports its progress, its duration and what it made the store copy.
//
// Incremental saves (only the pages written since the previous save) wait
// for the snapshot package: they will be an option of this call.
func (s *Store) Save(w io.Writer) error {
	if !s.saving.CompareAndSwap(false, true) {
		return ErrSaveInProgress
	}
	defer s.saving.Store(false)
	s.saves.Add(1) // no table grows meanwhile: growing rewrites what the snapshot shares
	defer s.saves.Add(-1)
	start := time.Now()
	sn, err := s.Snapshot()
	if err != nil {
		s.stats.saveFailed(start, err)
		return err
	}
	s.stats.saveStarted(start, sn)
	n, err := sn.stream(w, true, func(n int64) { s.stats.progress(n); s.sampleCow() })
	s.sampleCow()
	cerr := sn.Close()
	s.sp.SplitDeferred() // the large folios the snapshot left partly mapped
	// The pages the store copied meanwhile left their originals free (the
	// snapshot held them): give them back to the kernel, as Redis's child
	// exits, or the process keeps them resident until they are reused.
	s.releaseFree()
	if err == nil {
		err = cerr
	}
	s.stats.saveDone(s.sp.Stats(), n, err)
	return err
}

// releaseFree gives the arena's free memory back to the kernel, keeping
// retainFree (or 1/64 of the arena) for the allocations to come.
func (s *Store) releaseFree() {
	s.arena.Scavenge(min(s.arena.Stats().TotalPages*int64(s.ps)/64, retainFree))
}

// sampleCow records the memory the snapshots hold now, for the peak.
func (s *Store) sampleCow() {
	as := s.arena.Stats()
	used := as.TotalPages - as.FreePages
	s.stats.sample((used - s.sp.Stats().Resident) * int64(s.ps))
}
