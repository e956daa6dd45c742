package snapshot

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/anonfolio/anonfolio/cow"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
)

// Options configure Save.
type Options struct {
	// Delta writes only what the space changed since its previous
	// successful Save, or since the Load that gave it its contents
	// (ErrNoBase if there was none).
	Delta bool
	// Quiesce, if set, is called just before the Fork that fixes the
	// image's instant, and the function it returns (if not nil) just after
	// it: hold the locks there that make the caller's own structures
	// consistent. The Fork takes microseconds.
	Quiesce func() (resume func())
}

// Info describes an image written or read.
type Info struct {
	Pages   int64 // data pages in the image (never-written and zero-page pages are not stored, nor in a full image pages that hold only zeros)
	Bytes   int64 // bytes written to w, or read from r
	Regions int   // regions the image lists
	Delta   bool  // the image is a delta
}

// writeBuffer is the buffer that gathers an image's small records: pages
// records of 64 KiB or more go to the writer straight from the space's
// memory.
const writeBuffer = 64 << 10

// Save writes a point-in-time image of every region of s to w: a full image,
// or with opts.Delta what s changed since its previous successful Save (see
// the package doc). s keeps serving reads and writes meanwhile; the image is
// of the instant of the Fork that Save takes (opts.Quiesce brackets it).
// Saves and Loads of one space run one at a time. A Save that fails (the
// writer's error, or Save's own) leaves s's tracking as if it had not run:
// the next delta is relative to the last Save that succeeded. When Save
// returns, the Fork it took is closed.
func Save(w io.Writer, s *cow.Space, opts Options) (Info, error) {
	m := (*mm.Space)(s)
	switch {
	case !m.Valid():
		return Info{}, fmt.Errorf("snapshot: Save: %w: a nil Space, or one not made by NewSpace or Fork", cow.ErrInvalid)
	case w == nil:
		return Info{}, fmt.Errorf("snapshot: Save: %w: a nil writer", cow.ErrInvalid)
	}
	m.LockSnapshots()
	defer m.UnlockSnapshots()
	if opts.Delta && !m.Baseline().Valid() && !m.Closed() {
		return Info{}, fmt.Errorf("%w: the space has no successful Save or Load to be relative to", ErrNoBase)
	}
	c, since, err := snapshotFork(m, opts.Quiesce)
	if err != nil {
		return Info{}, fmt.Errorf("snapshot: Save: %w", err)
	}
	defer c.Close()
	if opts.Delta && !since.Base.Valid() {
		m.Abort(since)
		return Info{}, fmt.Errorf("%w: the space's baseline was reset meanwhile", ErrNoBase)
	}
	var id imageID
	rand.Read(id[:])
	info, err := writeImage(w, c, since, opts.Delta, id)
	if err != nil {
		m.Abort(since)
		return info, err
	}
	m.Commit(since, id)
	return info, nil
}

// snapshotFork takes the Save's Fork of m, with quiesce around it.
func snapshotFork(m *mm.Space, quiesce func() func()) (*mm.Space, *mm.Since, error) {
	if quiesce != nil {
		if resume := quiesce(); resume != nil {
			defer resume()
		}
	}
	return m.SnapshotFork(true)
}

// countingWriter counts what reaches w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// writeImage writes the image of c, the Save's Fork, to w.
func writeImage(w io.Writer, c *mm.Space, since *mm.Since, delta bool, id imageID) (Info, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, writeBuffer)
	e := &encoder{w: bw, hash: newPayloadHasher()}
	defer e.hash.stop()
	ps := c.PageSize()
	h := header{delta: delta, pageSize: ps, id: id}
	if delta {
		h.base = since.Base.Image
	}
	regions := c.Regions()
	if len(regions) > maxPayload/regionSize {
		return Info{}, fmt.Errorf("snapshot: Save: %w: %d regions, more than an image holds (%d)", cow.ErrInvalid, len(regions), maxPayload/regionSize)
	}
	st := &streamer{c: c, e: e, ps: uint64(ps), leaf: uint64(ps) * uint64(ps) / 8, regions: regions}
	if !delta {
		st.zero = make([]byte, ps) // a full image leaves pages of zeros out (see window)
	}
	err := e.header(h)
	if err == nil {
		err = e.regionsRecord(regionEntries(regions))
	}
	if err == nil && delta {
		err = e.resetsRecord(resetEntries(since.Resets))
	}
	if err == nil {
		if delta {
			err = st.spans(since.Written)
		} else {
			err = st.spans(regionSpans(regions, uint64(ps)))
		}
	}
	if err == nil {
		err = e.end()
	}
	if err == nil {
		err = bw.Flush()
	}
	info := Info{Pages: int64(e.pages), Bytes: cw.n, Regions: len(regions), Delta: delta}
	if err != nil {
		return info, fmt.Errorf("snapshot: Save: writing the image after %d bytes: %w", cw.n, err)
	}
	return info, nil
}

// streamer writes the pages of the Save's Fork window by window (a page
// table leaf's worth: 2 MiB with 4 KiB pages), straight from the Fork's
// memory, and unmaps each window once it is written (drop-behind): the
// space's writes to pages already saved then reuse them instead of copying.
// Only the Save touches its Fork, so the frames ScanPages returns stay
// mapped until Discard.
type streamer struct {
	c       *mm.Space
	e       *encoder
	ps      uint64
	leaf    uint64
	regions []mm.Region
	runs    []mm.PageRun
	parts   [][]byte // the payload of the record being gathered
	dropped mm.Addr  // everything below is unmapped
	next    int      // the first region that may hold something not dropped
	zero    []byte   // a page of zeros, for a full image; nil for a delta
}

// spans writes the pages mapped in each span, in address order.
func (st *streamer) spans(spans []mm.Span) error {
	for _, sp := range spans {
		end := sp.Addr + mm.Addr(uint64(sp.Pages)*st.ps)
		for addr := sp.Addr; addr < end; {
			// Straight to the next window with anything mapped: the
			// regions may be terabytes reserved and megabytes used.
			if addr = st.c.NextPopulated(addr, end); addr >= end {
				break
			}
			win := min(end, mm.Addr(uint64(addr)|(st.leaf-1))+1)
			if err := st.window(addr, win); err != nil {
				return err
			}
			st.dropBelow(mm.Addr(uint64(win) &^ (st.leaf - 1)))
			addr = win
		}
	}
	return nil
}

// window writes the pages mapped in [lo, hi), within one window.
func (st *streamer) window(lo, hi mm.Addr) error {
	var err error
	st.runs, err = st.c.ScanPages(lo, hi, st.runs[:0])
	if err != nil {
		return err
	}
	// One record for each run of consecutive addresses (up to maxPayload),
	// whatever frames back them: order-0 pages seldom lie in consecutive
	// frames, and a record per page would cost a header and two hashes each.
	a := st.c.Arena()
	var start uint64
	size := 0
	flush := func() error {
		if len(st.parts) == 0 {
			return nil
		}
		err := st.e.pagesRecord(start, int(st.ps), st.parts...)
		st.parts, size = st.parts[:0], 0
		return err
	}
	add := func(mem []byte, addr uint64) error {
		for len(mem) > 0 {
			if len(st.parts) > 0 && (start+uint64(size) != addr || size == maxPayload) {
				if err := flush(); err != nil {
					return err
				}
			}
			if len(st.parts) == 0 {
				start = addr
			}
			k := min(len(mem), maxPayload-size)
			st.parts = append(st.parts, mem[:k])
			size += k
			mem, addr = mem[k:], addr+uint64(k)
		}
		return nil
	}
	for _, r := range st.runs {
		mem := a.PageBytes(r.PFN, r.Pages)
		addr := uint64(r.Addr)
		if st.zero == nil {
			if err := add(mem, addr); err != nil {
				return err
			}
			continue
		}
		// A full image leaves out the pages that hold only zeros (the
		// untouched parts of large folios: a slab's chunk, a huge entry
		// written in one place), which a Load leaves unmapped and so
		// reading zero. A delta cannot: its page may be zero now and not
		// in the image it follows.
		for len(mem) > 0 {
			n := 0
			for n < len(mem) && !bytes.Equal(mem[n:n+int(st.ps)], st.zero) {
				n += int(st.ps)
			}
			if n > 0 {
				if err := add(mem[:n], addr); err != nil {
					return err
				}
			}
			for n < len(mem) && bytes.Equal(mem[n:n+int(st.ps)], st.zero) {
				n += int(st.ps)
			}
			mem, addr = mem[n:], addr+uint64(n)
		}
	}
	return flush()
}

// dropBelow unmaps what the Fork maps below addr.
func (st *streamer) dropBelow(addr mm.Addr) {
	if addr <= st.dropped {
		return
	}
	for ; st.next < len(st.regions); st.next++ {
		r := st.regions[st.next]
		lo, hi := max(r.Addr, st.dropped), min(r.End(), addr)
		if lo < hi {
			st.c.Discard(lo, int(hi-lo)) // it cannot fail: the range is valid, the Fork open
		}
		if r.End() > addr {
			break
		}
	}
	st.dropped = addr
}

// regionEntries encodes regions for the R record.
func regionEntries(rs []mm.Region) []regionEntry {
	out := make([]regionEntry, len(rs))
	for i, r := range rs {
		var prot, advice uint8
		if r.Prot&mm.ProtRead != 0 {
			prot |= 1
		}
		if r.Prot&mm.ProtWrite != 0 {
			prot |= 2
		}
		if r.DontFork {
			advice |= 1
		}
		if r.WipeOnFork {
			advice |= 2
		}
		out[i] = regionEntry{addr: uint64(r.Addr), length: uint64(r.Length), prot: prot, advice: advice}
	}
	return out
}

// resetEntries encodes resets for the Z record.
func resetEntries(rs []mm.Span) []resetEntry {
	out := make([]resetEntry, len(rs))
	for i, r := range rs {
		out[i] = resetEntry{addr: uint64(r.Addr), pages: uint64(r.Pages)}
	}
	return out
}

// regionSpans returns the regions as spans of pages.
func regionSpans(rs []mm.Region, ps uint64) []mm.Span {
	out := make([]mm.Span, len(rs))
	for i, r := range rs {
		out[i] = mm.Span{Addr: r.Addr, Pages: int(uint64(r.Length) / ps)}
	}
	return out
}
