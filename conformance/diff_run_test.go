package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/model"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/pin"
	"github.com/anonfolio/anonfolio/snapshot"
)

// Limits of a differential run: they bound the memory it can use, so that
// the library never runs out where the model cannot.
const (
	maxLive    = 4  // live spaces at once
	maxSlots   = 6  // spaces the operations choose from, closed ones included
	maxPins    = 4  // pins and gets held at once
	maxPinLen  = 4  // pages a pin covers at most
	maxAnchors = 4  // addresses Map returned that operations aim at
	traceLen   = 24 // operations shown when a comparison fails
	checkEvery = 64 // operations between two cow.Checks
	sweepEvery = 1024
)

// diffGeometry is the shape of a differential run for one arena.
type diffGeometry struct {
	ps       int
	maxPages int      // pages of the largest folio
	leaf     uint64   // bytes one page-table leaf maps
	base     cow.Addr // the window: two largest folios, across a leaf boundary if a leaf is larger
	winPages int
	budget   int // pages a space may map (window and Map'd regions) before Map and MapFixed turn into Unmap

	// A region that covers a whole page-table leaf, so that Fork shares
	// the leaf (on-demand fork), where a leaf is at most leafMax: the 32
	// MiB of 16 KiB pages, not the 512 MiB of 64 KiB ones.
	leafBase  cow.Addr
	leafPages int
}

const leafMax = 32 << 20

func newDiffGeometry(g folio.Geometry) diffGeometry {
	m := 1 << g.MaxOrder
	leaf := uint64(g.TableEntries) * uint64(g.PageSize)
	dg := diffGeometry{
		ps:       g.PageSize,
		maxPages: m,
		leaf:     leaf,
		base:     cow.Addr(1<<32 + leaf - uint64(m*g.PageSize)),
		winPages: 2 * m,
		budget:   4 * m,
	}
	if leaf <= leafMax {
		dg.leafBase = cow.Addr(1<<32 + 2*leaf)
		dg.leafPages = g.TableEntries
		dg.budget += dg.leafPages
	}
	return dg
}

// arenaBytes is an arena size the run cannot exhaust: every live space
// populating all it may in largest folios (its budget outside the leaf
// region, and in the leaf region what operations aimed at its start can
// reach), as many again for the snapshot replicas and a Load's Fork, and
// every pin holding two largest folios nobody maps any more, with a quarter
// more for folios left partly mapped.
func (g diffGeometry) arenaBytes() int64 {
	perSpace := g.budget - g.leafPages
	if g.leafPages > 0 {
		perSpace += g.winPages + g.maxPages
	}
	pages := (maxLive+maxReplicas+1)*perSpace + maxPins*2*g.maxPages
	return int64(pages+pages/4) * int64(g.ps)
}

// slot is a space of the run: the library's and the model's.
type slot struct {
	id  int
	s   *cow.Space
	acc *cow.Accessor // the space's Accessor: every other access goes through it
	m   *model.Space
}

// held is a pin or get of the run.
type held struct {
	id    int
	from  int // the slot it was taken from
	p     *pin.Pages
	m     *model.Pins // nil for a Get: what it sees after the take is not defined
	write bool
}

// differ drives the library and the model with the same operations and
// compares every result.
type differ struct {
	t    testing.TB
	e    *spacetest.Env
	opts cow.Options
	g    diffGeometry

	slots   []*slot
	accs    []*cow.Accessor // every slot's, closed at the end (a closed space's too: its errors are the space's)
	pins    []*held
	anchors []cow.Addr
	nextID  int

	got, want []byte // read buffers

	replicas []*replica // the spaces the images of Save are loaded into

	ops   int
	stats [nrOps]map[string]int // outcomes per operation: "ok" or the sentinel
	trace [traceLen]op
	cur   op
}

func newDiffer(t testing.TB, e *spacetest.Env, opts cow.Options) *differ {
	d := &differ{t: t, e: e, opts: opts, g: newDiffGeometry(e.A.Geometry())}
	t.Cleanup(func() { // before the Env's cleanup closes the arena
		for _, acc := range d.accs {
			acc.Close()
		}
	})
	if d.g.leafBase != 0 {
		d.anchors = append(d.anchors, d.g.leafBase)
	}
	d.newSpace()
	return d
}

// fail stops the run with the operations that led there.
func (d *differ) fail(format string, args ...any) {
	d.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "op %d: %v: %s\nlast operations (oldest first):\n", d.ops, d.cur, fmt.Sprintf(format, args...))
	for k := max(0, d.ops-traceLen); k < d.ops; k++ {
		fmt.Fprintf(&b, "  %6d %v\n", k, d.trace[k%traceLen])
	}
	d.t.Fatal(b.String())
}

// sentinels are the errors the library may return.
var sentinels = []error{cow.ErrInvalid, cow.ErrFault, cow.ErrProtection, cow.ErrClosed, pin.ErrFastFailed, folio.ErrNoMemory,
	snapshot.ErrNoBase, snapshot.ErrCorrupt, snapshot.ErrMismatch}

// sentinel returns the sentinel err wraps, err itself if none.
func sentinel(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// sameErr fails unless got and want wrap the same sentinel (or both are
// nil).
func (d *differ) sameErr(what string, got, want error) {
	d.t.Helper()
	if sentinel(got) != sentinel(want) {
		d.fail("%s: library says %v, model says %v", what, got, want)
	}
	d.outcome(got)
}

// outcome counts the outcome of the current operation.
func (d *differ) outcome(err error) {
	m := d.stats[d.cur.kind]
	if m == nil {
		m = make(map[string]int)
		d.stats[d.cur.kind] = m
	}
	k := "ok"
	if err != nil {
		k = sentinel(err).Error()
	}
	m[k]++
}

func (d *differ) live() int {
	n := 0
	for _, sl := range d.slots {
		if !sl.m.Closed() {
			n++
		}
	}
	return n
}

// newSpace adds a space with its window mapped read-write.
func (d *differ) newSpace() {
	s := d.e.Space(d.opts)
	sl := &slot{id: d.nextID, s: s, acc: d.accessor(s), m: model.NewSpace(d.g.ps)}
	d.nextID++
	length := d.g.winPages * d.g.ps
	d.sameErr("MapFixed window", s.MapFixed(d.g.base, length, cow.ProtRead|cow.ProtWrite),
		sl.m.MapFixed(d.g.base, length, cow.ProtRead|cow.ProtWrite))
	if d.g.leafBase != 0 {
		length := d.g.leafPages * d.g.ps
		d.sameErr("MapFixed leaf", s.MapFixed(d.g.leafBase, length, cow.ProtRead|cow.ProtWrite),
			sl.m.MapFixed(d.g.leafBase, length, cow.ProtRead|cow.ProtWrite))
	}
	d.addSlot(sl)
}

// addSlot adds a space, dropping the oldest closed one when full.
func (d *differ) addSlot(sl *slot) {
	if len(d.slots) >= maxSlots {
		if i := slices.IndexFunc(d.slots, func(o *slot) bool { return o.m.Closed() }); i >= 0 {
			d.slots = slices.Delete(d.slots, i, i+1)
		}
	}
	d.slots = append(d.slots, sl)
}

// slot decodes the space an operation works on: a live one but one time in
// sixteen, when it may be a closed one.
func (d *differ) slot(dc *decoder) *slot {
	c := int(dc.u8())
	if c&15 == 0 {
		return d.slots[c>>4%len(d.slots)]
	}
	live := make([]*slot, 0, maxSlots)
	for _, sl := range d.slots {
		if !sl.m.Closed() {
			live = append(live, sl)
		}
	}
	return live[c>>4%len(live)]
}

// page decodes a page offset in the window: mostly near its start or its
// middle (a leaf or largest-folio boundary), sometimes anywhere.
func (d *differ) page(dc *decoder) int {
	c := int(dc.u8())
	switch {
	case c < 96:
		return c % 24
	case c < 192:
		return d.g.maxPages - 12 + c%24
	}
	return (c<<8 | int(dc.u8())) % d.g.winPages
}

// addr decodes an address: mostly in the window, sometimes near an address
// Map returned, near zero or near the end of the address space; unaligned
// ones get a byte offset in the page too.
func (d *differ) addr(dc *decoder, aligned bool) cow.Addr {
	ps := cow.Addr(d.g.ps)
	var a cow.Addr
	switch c := dc.u8(); {
	case c < 208 || len(d.anchors) == 0 && c < 240:
		a = d.g.base + cow.Addr(d.page(dc))*ps
	case c < 240:
		a = d.anchors[int(c)%len(d.anchors)] + cow.Addr(dc.u8()%8)*ps
	case c < 248:
		a = cow.Addr(dc.u8()%4) * ps
	default:
		a = cow.Addr(1)<<pte.VABits - cow.Addr(1+dc.u8()%4)*ps
	}
	if !aligned {
		a += cow.Addr(dc.u8()) * ps / 256
		if dc.u8() == 0 {
			a += cow.Addr(dc.u8()) // anywhere in the page
		}
	}
	return a
}

// length decodes a page-multiple length: mostly a few pages, sometimes a
// largest folio or the whole window, now and then invalid.
func (d *differ) length(dc *decoder) int {
	ps := d.g.ps
	switch c := int(dc.u8()); {
	case c == 0:
		return 0
	case c == 1:
		return ps + 512 // not a page multiple
	case c < 128:
		return (1 + c%4) * ps
	case c < 232:
		return (1 + c%32) * ps
	case c < 248:
		return d.g.maxPages * ps
	default:
		return d.g.winPages * ps
	}
}

// rwLength decodes the length of an access in bytes: mostly up to three
// pages, now and then past a lockless section (256 KiB, after which
// ReadAt and WriteAt let a waiting Fork in).
func (d *differ) rwLength(dc *decoder) int {
	c := int(dc.u8())
	switch {
	case c < 128:
		return 1 + c%64
	case c < 224:
		return 1 + (c<<8|int(dc.u8()))%(d.g.ps+d.g.ps/2)
	case c >= 252:
		return (c-251)<<17 + int(dc.u8())*d.g.ps/16
	}
	return 1 + (c<<8|int(dc.u8()))*d.g.ps/64%(3*d.g.ps)
}

// data returns n bytes tagged by the operation, so that misplaced bytes
// show: a different tag per operation and per page.
func (d *differ) data(n int, tag byte) []byte {
	b := make([]byte, n)
	t := byte(d.ops)*31 ^ tag
	for i := range b {
		b[i] = t + byte(i) + byte(i>>12)*17
	}
	return b
}

// record starts the trace entry of an operation.
func (d *differ) record(kind opKind, sl *slot, a, b, c uint64) {
	d.cur = op{kind: kind, a: a, b: b, c: c, slot: -1}
	if sl != nil {
		d.cur.slot = sl.id
	}
}

// run decodes and runs every operation of dc.
func (d *differ) run(dc *decoder, limit int) {
	for n := 0; n < limit && dc.more(); n++ {
		d.step(dc)
	}
}

// step decodes and runs one operation.
func (d *differ) step(dc *decoder) {
	if d.live() == 0 {
		d.newSpace()
	}
	kind := opTable[dc.u8()]
	switch kind {
	case opWrite, opRead:
		d.access(dc, kind == opWrite)
	case opMap:
		d.mapAnywhere(dc)
	case opMapFixed, opUnmap, opProtect:
		d.rangeOp(dc, kind)
	case opRemap:
		d.remap(dc)
	case opAdvise:
		d.advise(dc)
	case opFork:
		d.fork(dc)
	case opClose:
		sl := d.slot(dc)
		d.record(opClose, sl, 0, 0, 0)
		d.close(sl)
	case opNew:
		d.record(opNew, nil, 0, 0, 0)
		if d.live() < maxLive {
			d.newSpace()
		}
	case opPin:
		d.take(dc)
	case opPinWrite, opPinRead, opRelease:
		d.pinOp(dc, kind)
	case opCheck:
		d.record(opCheck, nil, 0, 0, 0)
		d.check()
		d.outcome(nil)
	case opWriteProtect:
		sl := d.slot(dc)
		addr, length := d.addr(dc, true), d.length(dc)
		d.record(opWriteProtect, sl, uint64(addr), uint64(length), 0)
		d.sameErr("WriteProtect", sl.s.WriteProtect(addr, length), sl.m.WriteProtect(addr, length))
	case opWord:
		d.word(dc)
	case opSplit:
		sl := d.slot(dc)
		d.record(opSplit, sl, 0, 0, 0)
		d.cur.a = uint64(sl.s.SplitDeferred()) // changes no contents
		d.outcome(nil)
	case opSave:
		d.save(dc)
	case opResetTo:
		d.resetTo(dc)
	}
	d.trace[d.ops%traceLen] = d.cur
	d.ops++
	if d.ops%checkEvery == 0 {
		d.check()
	}
	if d.ops%sweepEvery == 0 {
		d.sweep()
	}
}

func (d *differ) access(dc *decoder, write bool) {
	sl := d.slot(dc)
	off := int64(d.addr(dc, false))
	if off < int64(d.g.ps) {
		off = -off // the first page is never mapped: try a negative offset instead
	}
	n := d.rwLength(dc)
	if write {
		d.record(opWrite, sl, uint64(off), uint64(n), 0)
		p := d.data(n, dc.u8())
		got, err := d.via(sl).WriteAt(p, off)
		want, werr := sl.m.WriteAt(p, off)
		d.sameErr("WriteAt", err, werr)
		if got != want {
			d.fail("WriteAt wrote %d bytes, model %d", got, want)
		}
		return
	}
	d.record(opRead, sl, uint64(off), uint64(n), 0)
	d.compareRead(sl, off, n)
}

// compareRead reads n bytes at off from both and compares.
func (d *differ) compareRead(sl *slot, off int64, n int) {
	if cap(d.got) < n {
		d.got, d.want = make([]byte, n), make([]byte, n)
	}
	got, want := d.got[:n], d.want[:n]
	k, err := d.via(sl).ReadAt(got, off)
	mk, merr := sl.m.ReadAt(want, off)
	d.sameErr("ReadAt", err, merr)
	if k != mk {
		d.fail("ReadAt read %d bytes, model %d", k, mk)
	}
	if i := firstDiff(got[:k], want[:k]); i >= 0 {
		d.fail("ReadAt differs at %#x (byte %d): library %q…, model %q…",
			uint64(off)+uint64(i), i, spacetest.Head(got[i:k]), spacetest.Head(want[i:k]))
	}
}

// accessor returns a new Accessor of s, remembered to be closed at the end.
func (d *differ) accessor(s *cow.Space) *cow.Accessor {
	acc := s.NewAccessor()
	d.accs = append(d.accs, acc)
	return acc
}

// via returns what an access of sl goes through: its Accessor every other
// operation (its software TLB across everything the run does to the
// space), the space itself otherwise.
func (d *differ) via(sl *slot) interface {
	io.ReaderAt
	io.WriterAt
} {
	if d.ops%2 == 1 {
		d.cur.note = "via the Accessor"
		return sl.acc
	}
	return sl.s
}

// word runs one of an Accessor's 8-byte operations and compares it with
// the same done on the model by reads and writes.
func (d *differ) word(dc *decoder) {
	sl := d.slot(dc)
	addr := d.addr(dc, false)
	c := dc.u8()
	if c&0xf0 != 0 {
		addr &^= 7 // mostly aligned; one in sixteen as it comes
	}
	val := uint64(d.ops)*0x9e3779b97f4a7c15 | 1
	which := [...]string{"Load", "Store", "Add", "CAS", "CAS-miss"}[int(c&15)%5]
	d.record(opWord, sl, uint64(addr), val, uint64(c))
	d.cur.note = which
	var buf [8]byte
	_, merr := sl.m.ReadAt(buf[:], int64(addr))
	old := binary.NativeEndian.Uint64(buf[:])
	if addr&7 != 0 {
		merr = cow.ErrInvalid // checked before anything else
	}
	store := func(v uint64) error {
		binary.NativeEndian.PutUint64(buf[:], v)
		_, err := sl.m.WriteAt(buf[:], int64(addr))
		return err
	}
	switch which {
	case "Load":
		got, err := sl.acc.LoadUint64(addr)
		d.sameErr("LoadUint64", err, merr)
		if err == nil && got != old {
			d.fail("LoadUint64 at %#x = %#x, model %#x", uint64(addr), got, old)
		}
	case "Store":
		err := sl.acc.StoreUint64(addr, val)
		if merr == nil {
			merr = store(val)
		}
		d.sameErr("StoreUint64", err, merr)
	case "Add":
		got, err := sl.acc.AddUint64(addr, val)
		if merr == nil {
			merr = store(old + val)
		}
		d.sameErr("AddUint64", err, merr)
		if err == nil && got != old+val {
			d.fail("AddUint64 at %#x = %#x, model %#x", uint64(addr), got, old+val)
		}
	default:
		want := old // "CAS": matches
		if which == "CAS-miss" {
			want = old + 1
		}
		ok, err := sl.acc.CompareAndSwapUint64(addr, want, val)
		if merr == nil && want == old {
			merr = store(val)
		}
		d.sameErr("CompareAndSwapUint64", err, merr)
		if err == nil && ok != (want == old) {
			d.fail("CompareAndSwapUint64 at %#x swapped %v, model %v", uint64(addr), ok, want == old)
		}
	}
}

// firstDiff returns the first index where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

func (d *differ) mapAnywhere(dc *decoder) {
	sl := d.slot(dc)
	length, prot := d.length(dc), dc.prot()
	d.record(opMap, sl, uint64(length), uint64(prot), 0)
	if length > 0 && sl.m.Pages()+length/d.g.ps > d.g.budget {
		return // over budget: nothing
	}
	addr, err := sl.s.Map(length, prot)
	d.sameErr("Map", err, sl.m.CheckMap(length, prot))
	if err != nil {
		return
	}
	d.cur.c = uint64(addr)
	if err := sl.m.Mapped(addr, length, prot, d.g.leaf); err != nil {
		d.fail("%v", err)
	}
	if len(d.anchors) < maxAnchors {
		d.anchors = append(d.anchors, addr)
	} else {
		d.anchors[len(d.anchors)-1-d.ops%2] = addr // the leaf stays
	}
}

func (d *differ) rangeOp(dc *decoder, kind opKind) {
	sl := d.slot(dc)
	addr, length := d.addr(dc, true), d.length(dc)
	var prot cow.Prot
	if kind != opUnmap {
		prot = dc.prot()
	}
	if kind == opMapFixed && sl.m.Pages() > d.g.budget {
		kind = opUnmap // over budget: make room instead
	}
	d.record(kind, sl, uint64(addr), uint64(length), uint64(prot))
	switch kind {
	case opMapFixed:
		d.sameErr("MapFixed", sl.s.MapFixed(addr, length, prot), sl.m.MapFixed(addr, length, prot))
	case opUnmap:
		d.sameErr("Unmap", sl.s.Unmap(addr, length), sl.m.Unmap(addr, length))
	case opProtect:
		d.sameErr("Protect", sl.s.Protect(addr, length, prot), sl.m.Protect(addr, length, prot))
	}
}

func (d *differ) remap(dc *decoder) {
	sl := d.slot(dc)
	old, length, new := d.addr(dc, true), d.length(dc), d.addr(dc, true)
	d.record(opRemap, sl, uint64(old), uint64(length), uint64(new))
	d.sameErr("Remap", sl.s.Remap(old, length, new), sl.m.Remap(old, length, new))
}

func (d *differ) advise(dc *decoder) {
	sl := d.slot(dc)
	addr, length, advice := d.addr(dc, true), d.length(dc), dc.advice()
	d.record(opAdvise, sl, uint64(addr), uint64(length), uint64(advice))
	d.cur.note = advice.String()
	err, want := sl.s.Advise(addr, length, advice), sl.m.Advise(addr, length, advice)
	if advice == cow.Collapse && want == nil && d.collapseMayRefuse(err) {
		want = err // the model cannot know which folios are busy
	}
	d.sameErr("Advise", err, want)
}

// collapseMayRefuse reports whether err is an answer Collapse may give
// where the model sees none: a pinned or referenced folio (ErrBusy), no
// free PMD-order block, or an arena capped below the PMD order. Either way
// no contents change, which the next reads check.
func (d *differ) collapseMayRefuse(err error) bool {
	g := d.e.A.Geometry()
	return errors.Is(err, cow.ErrBusy) || errors.Is(err, folio.ErrNoMemory) ||
		g.MaxOrder < g.PMDOrder && errors.Is(err, cow.ErrInvalid)
}

func (d *differ) fork(dc *decoder) {
	sl := d.slot(dc)
	d.record(opFork, sl, 0, 0, 0)
	if d.live() >= maxLive {
		d.cur.note = "too many: Close instead"
		d.close(sl)
		return
	}
	c, err := sl.s.Fork()
	mc, merr := sl.m.Fork()
	d.sameErr("Fork", err, merr)
	if err != nil {
		return
	}
	d.e.Spaces = append(d.e.Spaces, c)
	child := &slot{id: d.nextID, s: c, acc: d.accessor(c), m: mc}
	d.nextID++
	d.cur.note = fmt.Sprintf("child %d", child.id)
	d.addSlot(child)
}

func (d *differ) close(sl *slot) {
	d.sameErr("Close", sl.s.Close(), sl.m.Close())
}

// take pins or gets a range and compares what it holds.
func (d *differ) take(dc *decoder) {
	sl := d.slot(dc)
	addr := d.addr(dc, false)
	length := 1 + int(dc.u8())*(maxPinLen-1)*d.g.ps/256
	if dc.u8() == 0 {
		length = 0
	}
	flags, get := dc.pinFlags()
	d.record(opPin, sl, uint64(addr), uint64(length), uint64(flags))
	if get {
		d.cur.note = "Get"
	}
	if len(d.pins) >= maxPins {
		d.release(0)
	}
	var p *pin.Pages
	var err error
	if get {
		p, err = pin.Get(sl.s, addr, length, flags)
	} else {
		p, err = pin.Pin(sl.s, addr, length, flags)
	}
	mp, merr := sl.m.Take(addr, length, flags, !get)
	if flags&pin.FastOnly != 0 && errors.Is(err, pin.ErrFastFailed) {
		// The fast path may fail wherever the slow path would fault or
		// the entry does not allow the access yet: no model prediction.
		return
	}
	d.sameErr("Pin", err, merr)
	if err != nil {
		return
	}
	if got, want := spacetest.Join(p.Bytes()), mp.Bytes(); !bytes.Equal(got, want) {
		p.Release()
		d.fail("pinned bytes differ at %d: library %q…, model %q…", firstDiff(got, want),
			spacetest.Head(got[max(firstDiff(got, want), 0):]), spacetest.Head(want[max(firstDiff(got, want), 0):]))
	}
	h := &held{id: d.ops, from: sl.id, p: p, m: mp, write: flags&pin.Write != 0}
	if get {
		h.m, h.write = nil, false
	}
	d.pins = append(d.pins, h)
}

func (d *differ) pinOp(dc *decoder, kind opKind) {
	if len(d.pins) == 0 {
		d.record(kind, nil, 0, 0, 0)
		return
	}
	i := int(dc.u8()) % len(d.pins)
	h := d.pins[i]
	d.record(kind, nil, uint64(h.id), 0, 0)
	d.cur.slot = h.from
	d.outcome(nil)
	switch kind {
	case opPinWrite:
		if !h.write {
			return
		}
		size := h.m.Len()
		off := int(dc.u8()) * size / 256
		n := 1 + int(dc.u8())*(size-off)/256
		n = min(n, size-off)
		d.cur.b, d.cur.c = uint64(off), uint64(n)
		b := d.data(n, dc.u8())
		writeAt(h.p.Bytes(), b, off)
		h.m.WriteAt(b, off)
	case opPinRead:
		d.comparePin(h)
	case opRelease:
		d.release(i)
	}
}

// writeAt writes b at offset off of the slices of a pin.
func writeAt(parts [][]byte, b []byte, off int) {
	for _, p := range parts {
		if len(b) == 0 {
			return
		}
		if off >= len(p) {
			off -= len(p)
			continue
		}
		n := copy(p[off:], b)
		b, off = b[n:], 0
	}
}

// comparePin compares what a pin holds with the model (a Get is compared
// only when taken).
func (d *differ) comparePin(h *held) {
	if h.m == nil {
		return
	}
	got, want := spacetest.Join(h.p.Bytes()), h.m.Bytes()
	if i := firstDiff(got, want); i >= 0 {
		d.fail("pin %d (of space %d) differs at byte %d: library %q…, model %q…", h.id, h.from, i,
			spacetest.Head(got[i:]), spacetest.Head(want[i:]))
	}
}

// release compares and releases pin i.
func (d *differ) release(i int) {
	h := d.pins[i]
	d.comparePin(h)
	h.p.Release()
	if h.p.Bytes() != nil {
		d.fail("Bytes after Release is not nil")
	}
	h.p.Release() // a no-op
	d.pins = slices.Delete(d.pins, i, i+1)
}

// check runs cow.Check over every live space.
func (d *differ) check() {
	d.t.Helper()
	var spaces []*cow.Space
	for _, s := range d.e.Spaces {
		if !s.Closed() {
			spaces = append(spaces, s)
		}
	}
	if err := cow.Check(spaces...); err != nil {
		d.fail("cow.Check: %v", err)
	}
}

// sweep compares every page of the window and every page the model has
// populated, in every live space, and every pin.
func (d *differ) sweep() {
	saved := d.cur
	for _, sl := range d.slots {
		if sl.m.Closed() {
			continue
		}
		d.record(opRead, sl, 0, 0, 0)
		d.cur.note = "sweep"
		for i := range d.g.winPages {
			d.compareRead(sl, int64(d.g.base)+int64(i*d.g.ps), d.g.ps)
		}
		for _, a := range sl.m.Populated() {
			d.compareRead(sl, int64(a), d.g.ps)
		}
	}
	for _, h := range d.pins {
		d.comparePin(h)
	}
	d.cur = saved
}

// libStats sums the counters of every space the run made, for the log:
// what the operations made the library do.
func (d *differ) libStats() string {
	var alloc [folio.NrOrders]uint64
	var sum cow.Stats
	for _, s := range d.e.Spaces {
		st := s.Stats()
		for o, n := range st.FaultAlloc {
			alloc[o] += n
		}
		sum.WPReuse += st.WPReuse
		sum.WPCopy += st.WPCopy
		sum.ForkCopies += st.ForkCopies
		sum.LeafShares += st.LeafShares
		sum.LeafUnshares += st.LeafUnshares
		sum.ZeroPageMaps += st.ZeroPageMaps
		for o, n := range st.Split {
			sum.Split[0] += n
			sum.SplitDeferred[0] += st.SplitDeferred[o]
		}
	}
	var b strings.Builder
	b.WriteString("faults by order:")
	for o, n := range alloc {
		if n > 0 {
			fmt.Fprintf(&b, " %d:%d", o, n)
		}
	}
	fmt.Fprintf(&b, "; zero page %d, reuse %d, copy %d, fork copies %d, leaf shares %d, unshares %d, splits %d, deferred %d",
		sum.ZeroPageMaps, sum.WPReuse, sum.WPCopy, sum.ForkCopies, sum.LeafShares, sum.LeafUnshares, sum.Split[0], sum.SplitDeferred[0])
	return b.String()
}

// finish sweeps, checks and releases every pin (the Env then checks that
// every page comes back).
func (d *differ) finish() {
	d.sweep()
	d.check()
	for len(d.pins) > 0 {
		d.release(len(d.pins) - 1)
	}
	d.check()
}
