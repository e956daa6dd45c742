package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/pin"
)

// maxDefaultImage is the largest image Load accepts without an explicit
// Options.Arena.Size: a bound on what a header alone can make it reserve.
const maxDefaultImage = 32 << 30

// Load builds a store from an image written by Save or WriteTo. It maps
// each region of the image at its address, reads it straight into the new
// store's memory, then checks the checksums and every invariant of the
// layout: a truncated, corrupted or inconsistent image is ErrCorrupt, and
// nothing is loaded. The store's arena is opts.Arena (its Size 0 means four
// times the image, at least 1 GiB); opts.Shards and opts.Capacity are the
// image's.
func Load(r io.Reader, opts Options) (*Store, error) {
	in := imageReader{r: r, crc: crc32.New(castagnoli)}
	var fixed [16]byte
	if err := in.read(fixed[:]); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch {
	case string(fixed[:8]) != imageMagic:
		return nil, corrupt("not an image: bad magic")
	case le.Uint32(fixed[8:]) != imageVersion:
		return nil, corrupt("image version %d, want %d", le.Uint32(fixed[8:]), imageVersion)
	case le.Uint32(fixed[12:]) < 3 || le.Uint32(fixed[12:]) > maxRegions:
		return nil, corrupt("%d regions", le.Uint32(fixed[12:]))
	}
	hdr := make([]byte, imageHeaderLen(int(le.Uint32(fixed[12:]))))
	copy(hdr, fixed[:])
	if err := in.read(hdr[16:]); err != nil {
		return nil, err
	}
	end := len(hdr) - 8
	if le.Uint32(hdr[end:]) != crc32.Checksum(hdr[:end], castagnoli) {
		return nil, corrupt("header checksum")
	}
	regions, image, err := decodeRegions(hdr)
	if err != nil {
		return nil, err
	}
	if opts.Arena.Size == 0 {
		if image > maxDefaultImage {
			return nil, fmt.Errorf("%w: the image holds %d bytes; set Options.Arena.Size to load it", ErrTooLarge, image)
		}
		opts.Arena.Size = int64(max(1<<30, 4*image))
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	a, sp, err := newSpace(opts)
	if err != nil {
		return nil, err
	}
	s, err := loadInto(&in, a, sp, regions, opts)
	if err != nil {
		sp.Close()
		a.Close()
		return nil, err
	}
	return s, nil
}

// decodeRegions reads and checks the region table: page-aligned, inside
// the address space, not overlapping, each storing at most what it maps.
func decodeRegions(hdr []byte) ([]region, uint64, error) {
	le := binary.LittleEndian
	n := int(le.Uint32(hdr[12:]))
	regions := make([]region, n)
	var image uint64
	for i := range regions {
		o := 16 + regionEntry*i
		r := region{cow.Addr(le.Uint64(hdr[o:])), le.Uint64(hdr[o+8:]), le.Uint64(hdr[o+16:])}
		if r.addr == 0 || r.addr%4096 != 0 || r.reserved == 0 || r.reserved%4096 != 0 || r.reserved > 1<<46 ||
			uint64(r.addr) > 1<<46 || r.stored > r.reserved {
			return nil, 0, corrupt("region %d: %d of %d bytes at %#x", i, r.stored, r.reserved, r.addr)
		}
		regions[i] = r
		image += r.stored
	}
	sorted := slices.Clone(regions)
	slices.SortFunc(sorted, func(a, b region) int { return int(a.addr>>12) - int(b.addr>>12) })
	for i := 1; i < len(sorted); i++ {
		if uint64(sorted[i-1].addr)+sorted[i-1].reserved > uint64(sorted[i].addr) {
			return nil, 0, corrupt("regions at %#x and %#x overlap", sorted[i-1].addr, sorted[i].addr)
		}
	}
	return regions, image, nil
}

// loadInto maps the regions into sp, reads their bytes and the trailer,
// and opens the store they hold.
func loadInto(in *imageReader, a *folio.Arena, sp *cow.Space, regions []region, opts Options) (*Store, error) {
	rw := cow.ProtRead | cow.ProtWrite
	for _, r := range regions {
		if r.addr%cow.Addr(sp.PageSize()) != 0 || r.reserved%uint64(sp.PageSize()) != 0 {
			return nil, corrupt("region at %#x of %d bytes is not aligned to %d-byte pages", r.addr, r.reserved, sp.PageSize())
		}
		if err := sp.MapFixed(r.addr, int(r.reserved), rw); err != nil {
			return nil, fmt.Errorf("%w: mapping a region of %d bytes at %#x: %w", ErrCorrupt, r.reserved, r.addr, err)
		}
		if err := readRegion(in, sp, r.addr, r.stored); err != nil {
			return nil, err
		}
	}
	sum := in.crc.Sum32()
	var tr [trailerLen]byte
	if n, err := io.ReadFull(in.r, tr[:]); err != nil {
		return nil, readErr(err, in.n+int64(n))
	}
	le := binary.LittleEndian
	if le.Uint32(tr[:]) != sum || le.Uint32(tr[4:]) != 0 || string(tr[8:]) != trailerMagic {
		return nil, corrupt("trailer: checksum %#08x, want %#08x (or a bad trailer)", le.Uint32(tr[:]), sum)
	}
	return attach(a, sp, regions, opts)
}

// imageReader reads an image and checksums it.
type imageReader struct {
	r   io.Reader
	crc hash.Hash32
	n   int64
}

func (in *imageReader) read(b []byte) error {
	k, err := io.ReadFull(in.r, b)
	in.crc.Write(b[:k])
	in.n += int64(k)
	if err != nil {
		return readErr(err, in.n)
	}
	return nil
}

// readRegion reads n bytes of the image into [addr, addr+n) of sp,
// straight into its memory: each window is pinned writable (the space is
// not yet shared, no Fork can copy the pinned pages), read into and
// released.
func readRegion(in *imageReader, sp *cow.Space, addr cow.Addr, n uint64) error {
	ps := uint64(sp.PageSize())
	window := ps * ps / 8
	for off := uint64(0); off < n; off += window {
		p, err := pin.Pin(sp, addr+cow.Addr(off), int(min(window, n-off)), pin.Write)
		if err != nil {
			return err
		}
		for _, b := range p.Bytes() {
			if err := in.read(b); err != nil {
				p.Release()
				return err
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
