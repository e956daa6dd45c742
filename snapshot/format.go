package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/xxh3"
)

// The image format: see the package doc. This file encodes and decodes
// headers and records; it knows nothing of spaces.

const (
	magic   = "anonsnap"
	version = 1

	kindFull  = 0
	kindDelta = 1

	headerSize    = 56
	recHeaderSize = 16
	sumSize       = 8
	regionSize    = 24 // an R entry
	resetSize     = 16 // a Z entry
	endSize       = 32 // E's payload

	recRegions = 'R'
	recResets  = 'Z'
	recPages   = 'P'
	recEnd     = 'E'

	// maxPayload bounds a record's payload: a pages record's n, and the
	// memory a decoder allocates for an R or Z record before its sum is
	// checked.
	maxPayload = 4 << 20

	// vaLimit is the end of a space's address space (47 bits).
	vaLimit = uint64(1) << 47
)

// imageID names an image.
type imageID = [16]byte

// header is an image's header.
type header struct {
	delta    bool
	pageSize int
	id, base imageID
}

// regionEntry is an R entry.
type regionEntry struct {
	addr, length uint64
	prot         uint8 // bit 0 read, bit 1 write
	advice       uint8 // bit 0 DontFork, bit 1 WipeOnFork
}

func (r regionEntry) end() uint64 { return r.addr + r.length }

const (
	protBits   = 3
	adviceBits = 3
)

// resetEntry is a Z entry.
type resetEntry struct{ addr, pages uint64 }

// endEntry is E's payload.
type endEntry struct{ regions, pages, records, bytes uint64 }

// recHeader is a record's header.
type recHeader struct {
	typ  byte
	n    uint32
	addr uint64
}

func (h recHeader) put(b []byte) {
	b[0], b[1], b[2], b[3] = h.typ, 0, 0, 0
	binary.LittleEndian.PutUint32(b[4:], h.n)
	binary.LittleEndian.PutUint64(b[8:], h.addr)
}

// recordSum is a record's sum: the record header and its payload's hash,
// chained from the previous sum.
func recordSum(prev uint64, hdr []byte, payloadHash uint64) uint64 {
	var b [recHeaderSize + 8]byte
	copy(b[:], hdr)
	binary.LittleEndian.PutUint64(b[recHeaderSize:], payloadHash)
	return xxh3.HashSeed(b[:], prev)
}

// corrupt returns ErrCorrupt with what is wrong.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// encoder writes an image.
type encoder struct {
	w       io.Writer
	sum     uint64 // the last sum written
	n       int64  // bytes written
	records uint64
	pages   uint64
	regions uint64
	buf     []byte
	hash    *payloadHasher // hashes large payloads while they are written; nil: inline
}

func (e *encoder) write(b []byte) error {
	k, err := e.w.Write(b)
	e.n += int64(k)
	return err
}

// header writes the image header.
func (e *encoder) header(h header) error {
	var b [headerSize]byte
	copy(b[:], magic)
	binary.LittleEndian.PutUint16(b[8:], version)
	if h.delta {
		b[10] = kindDelta
	}
	binary.LittleEndian.PutUint32(b[12:], uint32(h.pageSize))
	copy(b[16:], h.id[:])
	copy(b[32:], h.base[:])
	e.sum = xxh3.Hash(b[:48])
	binary.LittleEndian.PutUint64(b[48:], e.sum)
	return e.write(b[:])
}

// record writes one record. A large payload is hashed on the hasher's
// goroutine while it is written (the sum comes after it): on a machine
// with a spare core a Save to a file costs the write, not the write and
// the hash.
func (e *encoder) record(h recHeader, payload ...[]byte) error {
	var hb [recHeaderSize]byte
	h.put(hb[:])
	size := 0
	for _, p := range payload {
		size += len(p)
	}
	async := e.hash != nil && size >= asyncMin
	var ph uint64
	if async {
		e.hash.in <- payload
	} else {
		ph = hashParts(payload)
	}
	err := e.write(hb[:])
	for _, p := range payload {
		if err == nil {
			err = e.write(p)
		}
	}
	if async {
		ph = <-e.hash.out // always: the hasher is waiting to hand it over
	}
	if err != nil {
		return err
	}
	e.sum = recordSum(e.sum, hb[:], ph)
	var sb [sumSize]byte
	binary.LittleEndian.PutUint64(sb[:], e.sum)
	if err := e.write(sb[:]); err != nil {
		return err
	}
	e.records++
	return nil
}

// hashParts returns the XXH3-64 of the concatenation of parts.
func hashParts(parts [][]byte) uint64 {
	if len(parts) == 1 {
		return xxh3.Hash(parts[0])
	}
	h := xxh3.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum64()
}

// payloadHasher hashes the payloads handed to it on its own goroutine,
// one at a time.
type payloadHasher struct {
	in  chan [][]byte
	out chan uint64
}

func newPayloadHasher() *payloadHasher {
	h := &payloadHasher{in: make(chan [][]byte), out: make(chan uint64)}
	go func() {
		for parts := range h.in {
			h.out <- hashParts(parts)
		}
	}()
	return h
}

// stop ends the hasher's goroutine.
func (h *payloadHasher) stop() { close(h.in) }

// regionsRecord writes the R record.
func (e *encoder) regionsRecord(rs []regionEntry) error {
	b := e.buf[:0]
	for _, r := range rs {
		var x [regionSize]byte
		binary.LittleEndian.PutUint64(x[0:], r.addr)
		binary.LittleEndian.PutUint64(x[8:], r.length)
		x[16], x[17] = r.prot, r.advice
		b = append(b, x[:]...)
	}
	e.buf = b
	e.regions = uint64(len(rs))
	return e.record(recHeader{typ: recRegions, n: uint32(len(rs))}, b)
}

// resetsRecord writes the Z record.
func (e *encoder) resetsRecord(rs []resetEntry) error {
	b := e.buf[:0]
	for _, r := range rs {
		b = binary.LittleEndian.AppendUint64(b, r.addr)
		b = binary.LittleEndian.AppendUint64(b, r.pages)
	}
	e.buf = b
	return e.record(recHeader{typ: recResets, n: uint32(len(rs))}, b)
}

// pagesRecord writes a P record of the pages at addr on, whose contents
// are the concatenation of parts (a whole number of pages, at most
// maxPayload bytes).
func (e *encoder) pagesRecord(addr uint64, pageSize int, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p) / pageSize
	}
	e.pages += uint64(n)
	return e.record(recHeader{typ: recPages, n: uint32(n), addr: addr}, parts...)
}

// end writes the E record.
func (e *encoder) end() error {
	var b [endSize]byte
	binary.LittleEndian.PutUint64(b[0:], e.regions)
	binary.LittleEndian.PutUint64(b[8:], e.pages)
	binary.LittleEndian.PutUint64(b[16:], e.records)
	binary.LittleEndian.PutUint64(b[24:], uint64(e.n))
	return e.record(recHeader{typ: recEnd}, b[:])
}

// decoder reads an image, checking it as it goes. It never reads past the
// image's end.
type decoder struct {
	r        io.Reader
	pageSize int
	sum      uint64 // the last sum checked
	n        int64  // bytes read
	records  uint64
	pages    uint64
	regions  uint64
	hdr      [recHeaderSize]byte // the current record's header
	hash     *xxh3.Hasher        // the current record's payload hash
	buf      []byte
}

func newDecoder(r io.Reader) *decoder { return &decoder{r: r, hash: xxh3.New()} }

// read fills b from the image; running out is ErrCorrupt (truncated).
func (d *decoder) read(b []byte) error {
	k, err := io.ReadFull(d.r, b)
	d.n += int64(k)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("truncated after %d bytes", d.n)
	}
	if err != nil {
		return fmt.Errorf("reading the image after %d bytes: %w", d.n, err)
	}
	return nil
}

// header reads and checks the image header.
func (d *decoder) header() (header, error) {
	var b [headerSize]byte
	if err := d.read(b[:]); err != nil {
		return header{}, err
	}
	if string(b[:8]) != magic {
		return header{}, corrupt("not an image: the magic is %q", b[:8])
	}
	d.sum = xxh3.Hash(b[:48])
	if got := binary.LittleEndian.Uint64(b[48:]); got != d.sum {
		return header{}, corrupt("header checksum %#x, the header hashes to %#x", got, d.sum)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != version {
		return header{}, corrupt("version %d; this package reads version %d", v, version)
	}
	h := header{pageSize: int(binary.LittleEndian.Uint32(b[12:]))}
	switch b[10] {
	case kindFull:
	case kindDelta:
		h.delta = true
	default:
		return header{}, corrupt("kind %d", b[10])
	}
	if h.pageSize < 4096 || bits.OnesCount(uint(h.pageSize)) != 1 || h.pageSize > maxPayload || b[11] != 0 {
		return header{}, corrupt("page size %d", h.pageSize)
	}
	copy(h.id[:], b[16:32])
	copy(h.base[:], b[32:48])
	if h.delta != (h.base != imageID{}) || h.id == (imageID{}) {
		return header{}, corrupt("image id %x, base %x for a %s image", h.id, h.base, kindName(h.delta))
	}
	d.pageSize = h.pageSize
	return h, nil
}

func kindName(delta bool) string {
	if delta {
		return "delta"
	}
	return "full"
}

// next reads the next record's header and checks what can be checked
// before its payload: its type is want (or, for want recPages, a pages or
// the end record) and its fields are in range. The payload follows: read
// it with payload (R, Z, E) or into (P), then call check.
func (d *decoder) next(want byte) (recHeader, error) {
	if err := d.read(d.hdr[:]); err != nil {
		return recHeader{}, err
	}
	b := d.hdr[:]
	h := recHeader{typ: b[0], n: binary.LittleEndian.Uint32(b[4:]), addr: binary.LittleEndian.Uint64(b[8:])}
	if b[1]|b[2]|b[3] != 0 {
		return h, corrupt("record %d: reserved bytes %x", d.records, b[1:4])
	}
	if h.typ != want && !(want == recPages && h.typ == recEnd) {
		return h, corrupt("record %d is %q where %q is expected", d.records, h.typ, want)
	}
	var size uint64
	switch h.typ {
	case recRegions:
		size = uint64(h.n) * regionSize
	case recResets:
		size = uint64(h.n) * resetSize
	case recPages:
		size = uint64(h.n) * uint64(d.pageSize)
		if h.n == 0 || h.addr%uint64(d.pageSize) != 0 {
			return h, corrupt("record %d: %d pages at %#x", d.records, h.n, h.addr)
		}
	case recEnd:
		if h.n != 0 {
			return h, corrupt("end record with n %d", h.n)
		}
	}
	if h.typ != recPages && h.addr != 0 || size > maxPayload {
		return h, corrupt("record %d (%q): n %d, address %#x", d.records, h.typ, h.n, h.addr)
	}
	d.hash.Reset()
	return h, nil
}

// payload reads an R, Z or E record's payload of size bytes and checks the
// record: the bytes returned are valid until the next call.
func (d *decoder) payload(size int) ([]byte, error) {
	if cap(d.buf) < size {
		d.buf = make([]byte, size)
	}
	b := d.buf[:size]
	if err := d.into(b); err != nil {
		return nil, err
	}
	return b, d.check()
}

// into reads the next bytes of the current record's payload into b.
func (d *decoder) into(b []byte) error {
	if err := d.read(b); err != nil {
		return err
	}
	d.hash.Write(b)
	return nil
}

// intoAsync reads the current record's whole payload into parts and its
// sum, and hands the check to pipe: the sum is trusted until pipe.wait.
func (d *decoder) intoAsync(parts [][]byte, pipe *hashPipe) error {
	for _, b := range parts {
		if err := d.read(b); err != nil {
			return err
		}
	}
	var b [sumSize]byte
	if err := d.read(b[:]); err != nil {
		return err
	}
	j := hashJob{record: d.records, hdr: d.hdr, parts: parts, prev: d.sum, want: binary.LittleEndian.Uint64(b[:])}
	pipe.jobs <- j
	d.sum = j.want
	d.records++
	return nil
}

// check reads the current record's sum and checks it.
func (d *decoder) check() error {
	var b [sumSize]byte
	if err := d.read(b[:]); err != nil {
		return err
	}
	want := recordSum(d.sum, d.hdr[:], d.hash.Sum64())
	if got := binary.LittleEndian.Uint64(b[:]); got != want {
		return corrupt("record %d (%q): checksum %#x, its bytes hash to %#x", d.records, d.hdr[0], got, want)
	}
	d.sum = want
	d.records++
	return nil
}

// regionsRecord reads the R record and checks the regions: page-aligned,
// non-empty, sorted, disjoint, inside the address space, with valid bits.
func (d *decoder) regionsRecord() ([]regionEntry, error) {
	h, err := d.next(recRegions)
	if err != nil {
		return nil, err
	}
	b, err := d.payload(int(h.n) * regionSize)
	if err != nil {
		return nil, err
	}
	ps := uint64(d.pageSize)
	rs := make([]regionEntry, h.n)
	var prevEnd uint64
	for i := range rs {
		x := b[i*regionSize:]
		r := regionEntry{addr: binary.LittleEndian.Uint64(x[0:]), length: binary.LittleEndian.Uint64(x[8:]), prot: x[16], advice: x[17]}
		switch {
		case r.addr == 0 || r.addr%ps != 0 || r.length == 0 || r.length%ps != 0,
			r.addr >= vaLimit || r.length > vaLimit-r.addr,
			r.addr < prevEnd,
			r.prot&^protBits != 0 || r.advice&^adviceBits != 0 || string(x[18:24]) != "\x00\x00\x00\x00\x00\x00":
			return nil, corrupt("region %d: %#x+%#x prot %#x advice %#x", i, r.addr, r.length, r.prot, r.advice)
		}
		prevEnd = r.end()
		rs[i] = r
	}
	d.regions = uint64(len(rs))
	return rs, nil
}

// resetsRecord reads the Z record and checks the ranges.
func (d *decoder) resetsRecord() ([]resetEntry, error) {
	h, err := d.next(recResets)
	if err != nil {
		return nil, err
	}
	b, err := d.payload(int(h.n) * resetSize)
	if err != nil {
		return nil, err
	}
	ps := uint64(d.pageSize)
	rs := make([]resetEntry, h.n)
	var prevEnd uint64
	for i := range rs {
		r := resetEntry{addr: binary.LittleEndian.Uint64(b[i*resetSize:]), pages: binary.LittleEndian.Uint64(b[i*resetSize+8:])}
		if r.addr == 0 || r.addr%ps != 0 || r.pages == 0 || r.addr >= vaLimit || r.pages > (vaLimit-r.addr)/ps || r.addr < prevEnd {
			return nil, corrupt("reset %d: %d pages at %#x", i, r.pages, r.addr)
		}
		prevEnd = r.addr + r.pages*ps
		rs[i] = r
	}
	return rs, nil
}

// endRecord checks the E record, whose header next returned, against what
// was read.
func (d *decoder) endRecord() error {
	records, bytes := d.records, uint64(d.n)-recHeaderSize
	b, err := d.payload(endSize)
	if err != nil {
		return err
	}
	got := endEntry{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])}
	if want := (endEntry{d.regions, d.pages, records, bytes}); got != want {
		return corrupt("the end record counts %+v, the image holds %+v", got, want)
	}
	return nil
}
