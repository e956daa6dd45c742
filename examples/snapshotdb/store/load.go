package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/pin"
)

// maxDefaultImage is the largest image Load accepts without an explicit
// Options.Arena.Size: a bound on what a header alone can make it reserve.
const maxDefaultImage = 32 << 30

// Load builds a store from an image written by Save or WriteTo. It reads
// the index and slab straight into the new store's memory, then checks the
// checksums and every invariant of the layout: a truncated, corrupted or
// inconsistent image is ErrCorrupt, and nothing is loaded. The store's
// arena is opts.Arena (its Size 0 means four times the image, at least
// 1 GiB).
func Load(r io.Reader, opts Options) (*Store, error) {
	hdr := make([]byte, headerLen)
	if n, err := io.ReadFull(r, hdr); err != nil {
		return nil, readErr(err, int64(n))
	}
	m, err := decodeMeta(hdr, 1<<46)
	if err != nil {
		return nil, err
	}
	image := m.slots*slotSize + m.slabTop
	if opts.Arena.Size == 0 {
		if image > maxDefaultImage {
			return nil, fmt.Errorf("%w: the image claims %d bytes; set Options.Arena.Size to load it", ErrTooLarge, image)
		}
		opts.Arena.Size = int64(max(1<<30, 4*image))
	}
	s, err := open(opts, m.seed, m.slots)
	if err != nil {
		return nil, err
	}
	if err := s.load(r, hdr, &m); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// load reads the index and slab of m into the new store s, checks them,
// and makes m the store's header.
func (s *Store) load(r io.Reader, hdr []byte, m *meta) error {
	s.mu.Lock() // nobody else has the store yet: this is for the annotations
	defer s.mu.Unlock()
	if m.slabTop > s.slabLimit {
		return fmt.Errorf("%w: a slab of %d bytes does not fit the arena's %d", ErrTooLarge, m.slabTop, s.slabLimit)
	}
	in := imageReader{r: r, crc: crc32.New(castagnoli)}
	in.crc.Write(hdr)
	in.n = int64(len(hdr))
	if err := s.readRegion(&in, s.t.index, m.slots*slotSize); err != nil {
		return err
	}
	if err := s.readRegion(&in, s.t.slab, m.slabTop); err != nil {
		return err
	}
	var tr [16]byte
	if n, err := io.ReadFull(r, tr[:]); err != nil {
		return readErr(err, in.n+int64(n))
	}
	if got, want := binary.LittleEndian.Uint32(tr[:]), in.crc.Sum32(); got != want || binary.LittleEndian.Uint32(tr[4:]) != 0 || string(tr[8:]) != trailerMagic {
		return corrupt("trailer: checksum %#08x, want %#08x (or a bad trailer)", got, want)
	}
	if err := s.validate(m); err != nil {
		return err
	}
	s.m = *m
	return s.flushMeta()
}

// imageReader reads an image and checksums it.
type imageReader struct {
	r   io.Reader
	crc hash.Hash32
	n   int64
}

// readRegion reads n bytes of the image into [addr, addr+n) of the store,
// straight into its memory: each window is pinned writable (the store is
// not yet shared, no Fork can copy the pinned pages), read into and
// released.
//
// +checklocks:s.mu
func (s *Store) readRegion(in *imageReader, addr cow.Addr, n uint64) error {
	for off := uint64(0); off < n; off += s.leaf {
		p, err := pin.Pin(s.sp, addr+cow.Addr(off), int(min(s.leaf, n-off)), pin.Write)
		if err != nil {
			return err
		}
		for _, b := range p.Bytes() {
			k, err := io.ReadFull(in.r, b)
			in.crc.Write(b[:k])
			in.n += int64(k)
			if err != nil {
				p.Release()
				return readErr(err, in.n)
			}
		}
		p.Release()
	}
	return nil
}

// readErr turns an end of input into ErrCorrupt (truncated).
func readErr(err error, at int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated after %d bytes: %w", ErrCorrupt, at, io.ErrUnexpectedEOF)
	}
	return err
}
