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

// WriteTo writes the snapshot's image to w: the header, the index and the
// slab straight from the snapshot's memory, and a checksummed trailer.
// It implements io.WriterTo.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	if sn.t.sp.Closed() {
		return 0, ErrClosed
	}
	return sn.stream(w, false, nil)
}

// stream writes the image to w. With drop it unmaps each window of the
// snapshot once written: the store's later writes to those pages then
// reuse them instead of copying (and the pages only the snapshot held go
// back to the arena), which is what a Save wants and a view cannot do.
// progress, if not nil, is called after each window with the bytes written.
func (sn *Snapshot) stream(w io.Writer, drop bool, progress func(int64)) (int64, error) {
	out := imageWriter{w: w, crc: crc32.New(castagnoli)}
	sp := sn.t.sp
	ps := uint64(sp.PageSize())
	regions := []struct {
		addr cow.Addr
		n    uint64
	}{
		{sn.st.metaAddr, uint64(headerLen)},
		{sn.t.index, sn.m.slots * slotSize},
		{sn.t.slab, sn.m.slabTop},
	}
	for _, r := range regions {
		for off := uint64(0); off < r.n; off += sn.st.leaf {
			n := min(sn.st.leaf, r.n-off)
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
	var tr [16]byte
	binary.LittleEndian.PutUint32(tr[:], out.crc.Sum32())
	copy(tr[8:], trailerMagic)
	if _, err := w.Write(tr[:]); err != nil {
		return out.n, err
	}
	return out.n + int64(len(tr)), nil
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
// writes: it takes a Fork (the store waits only for that), streams the
// child's memory without copying it, and closes the child. Only one save
// runs at a time (ErrSaveInProgress). Stats reports its progress, its
// duration and what it made the store copy.
func (s *Store) Save(w io.Writer) error {
	if !s.saving.CompareAndSwap(false, true) {
		return ErrSaveInProgress
	}
	defer s.saving.Store(false)
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
	if err == nil {
		err = cerr
	}
	s.stats.saveDone(s.sp.Stats(), n, err)
	return err
}

// sampleCow records the memory the snapshots hold now, for the peak.
func (s *Store) sampleCow() {
	as := s.arena.Stats()
	used := as.TotalPages - as.FreePages
	s.stats.sample((used - s.sp.Stats().Resident) * int64(s.ps))
}
