package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/snapshot"
)

// maxDefaultImage is the largest chain Load accepts without an explicit
// Options.Arena.Size: a bound on what a file alone can make it reserve.
const maxDefaultImage = 32 << 30

// Load builds a store from a full image written by Save or WriteTo (see
// LoadChain).
func Load(r io.Reader, opts Options) (*Store, error) { return LoadChain([]io.Reader{r}, opts) }

// LoadChain builds a store from a full image followed by deltas, in the
// order they were saved: each delta must follow the image before it
// (ErrBrokenChain otherwise). package snapshot checks each image's
// checksums as it streams it into the new space; the store then checks
// every invariant of its layout (validate.go). A truncated, corrupted or
// crafted image is ErrCorrupt; either way nothing is loaded and no memory
// is kept: never a half load. The store's arena is opts.Arena (its Size 0
// means four times the images, at least 1 GiB, when their sizes are known
// (files, bytes.Reader...), else 1 GiB); opts.Shards and opts.Capacity are
// the image's. The loaded store's next delta follows the last image.
func LoadChain(images []io.Reader, opts Options) (*Store, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("%w: no image to load", cow.ErrInvalid)
	}
	if opts.Arena.Size == 0 {
		var total int64
		for _, r := range images {
			total += sizeOf(r)
		}
		if total > maxDefaultImage {
			return nil, fmt.Errorf("%w: the images hold %d bytes; set Options.Arena.Size to load them", ErrTooLarge, total)
		}
		opts.Arena.Size = max(1<<30, 4*total)
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	a, sp, err := newSpace(opts)
	if err != nil {
		return nil, err
	}
	s, err := loadChain(images, a, sp, opts)
	if err != nil {
		sp.Close()
		a.Close()
		return nil, err
	}
	return s, nil
}

// loadChain loads images into sp, in order, and opens the store they hold.
func loadChain(images []io.Reader, a *folio.Arena, sp *cow.Space, opts Options) (*Store, error) {
	for i, r := range images {
		er := &eofReader{r: r}
		_, err := snapshot.Load(er, sp)
		switch {
		case err == nil:
			continue
		case errors.Is(err, snapshot.ErrCorrupt) && er.eof:
			return nil, fmt.Errorf("%w: image %d of %d: %w (%w)", ErrCorrupt, i+1, len(images), err, io.ErrUnexpectedEOF)
		case errors.Is(err, snapshot.ErrCorrupt):
			return nil, fmt.Errorf("%w: image %d of %d: %w", ErrCorrupt, i+1, len(images), err)
		case errors.Is(err, snapshot.ErrMismatch) && i == 0:
			return nil, fmt.Errorf("%w: the first image is a delta, or of another page size: %w", ErrBrokenChain, err)
		case errors.Is(err, snapshot.ErrMismatch):
			return nil, fmt.Errorf("%w: image %d of %d does not follow image %d: %w", ErrBrokenChain, i+1, len(images), i, err)
		default:
			return nil, fmt.Errorf("loading image %d of %d: %w", i+1, len(images), err)
		}
	}
	return attach(a, sp, opts)
}

// eofReader notes whether its reader ran out: a corrupt image that did is
// a truncated one.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		e.eof = true
	}
	return n, err
}

// sizeOf returns the bytes left in r if it knows them, else 0.
func sizeOf(r io.Reader) int64 {
	switch r := r.(type) {
	case interface{ Len() int }:
		return int64(r.Len())
	case *os.File:
		if fi, err := r.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return 0
}

// findRoot returns the store's root: the one region that starts with a
// superblock's magic.
func findRoot(sp *cow.Space) (cow.Addr, error) {
	var root cow.Addr
	for _, r := range sp.Regions() {
		var m [8]byte
		if _, err := sp.ReadAt(m[:], int64(r.Addr)); err != nil {
			return 0, err
		}
		if string(m[:]) == superMagic {
			if root != 0 {
				return 0, corrupt("two superblocks, at %#x and %#x", root, r.Addr)
			}
			root = r.Addr
		}
	}
	if root == 0 {
		return 0, corrupt("no store in the image: no superblock")
	}
	return root, nil
}

// covered reports whether [addr, addr+n) is mapped, and returns the
// region holding addr.
func covered(sp *cow.Space, addr cow.Addr, n uint64) (cow.Region, bool) {
	rs := sp.Regions()
	sort.Slice(rs, func(i, j int) bool { return rs[i].Addr < rs[j].Addr })
	var first cow.Region
	at := addr
	for _, r := range rs {
		switch {
		case r.End() <= at:
			continue
		case r.Addr > at:
			return first, false
		}
		if at == addr {
			first = r
		}
		at = r.End()
		if uint64(at-addr) >= n {
			return first, true
		}
	}
	return first, false
}
