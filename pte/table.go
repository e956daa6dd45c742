package pte

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/folio"
)

// VABits is the size of the virtual address space one Table maps: 47 bits,
// a user address space on x86-64 with 4-level paging.
const VABits = 47

// Folios tells a table which folio a page belongs to: a contpte block may
// only be folded over pages of one folio. *folio.Arena implements it.
type Folios interface {
	PageFolio(pfn folio.PFN) (head folio.PFN, order int, ok bool)
}

// Table is a software page table: a sparse radix of directories above, each
// directory (a PMD table) holding either huge entries that map a PMD-order
// folio whole, or leaves (PTE tables) of PageSize/8 entries.
//
// Lookups are lockless (atomic pointers and entries). Allocating the radix
// and directories takes Table.mu; installing or removing a leaf or a huge
// entry takes the directory's lock; changing entries of a leaf takes the
// leaf's lock, the PTL.
type Table struct {
	geo       folio.Geometry
	folios    Folios
	leafShift uint // address bits one leaf maps (the PMD shift)
	dirShift  uint // address bits one directory maps
	midBits   uint // directories per mid-level node, log2
	topBits   uint

	mu  sync.Mutex // guards the allocation of mid nodes and directories
	top []atomic.Pointer[midNode]

	nrDirs   atomic.Int64
	nrLeaves atomic.Int64
}

type midNode struct {
	dirs []atomic.Pointer[Dir]
}

// Dir is one directory: TableEntries slots, each none, a huge entry, or a
// leaf. Its lock (the PMD lock) guards the huge entries and leaf install
// and removal; lock order: Dir.mu → Leaf.mu.
type Dir struct {
	t    *Table
	base uint64 // first address it maps

	mu   sync.Mutex
	huge []atomic.Uint64        // huge entry per slot (written with mu held)
	leaf []atomic.Pointer[Leaf] // leaf per slot (written with mu held)
}

// Leaf is one PTE table. Its entries are atomic words, changed only with mu
// (the PTL) held and read with or without it.
type Leaf struct {
	t    *Table
	base uint64 // first address it maps

	mu   sync.Mutex
	ptes []atomic.Uint64
	// nr counts the entries that are not none.
	// +checklocks:mu
	nr int
	// dead is set when the leaf is detached from its directory: walkers
	// that locked it retry.
	// +checklocks:mu
	dead bool

	// refs counts the spaces sharing this leaf: 1, or more once leaves are
	// shared after a fork (on-demand fork). Atomic.
	refs atomic.Int32
}

// New returns an empty table for geometry geo. folios resolves pages to
// folios when a contpte block is folded; it may be nil, and then blocks are
// folded only by SetPTEs (whose caller vouches for the folio).
func New(geo folio.Geometry, folios Folios) *Table {
	entShift := uint(bits.TrailingZeros(uint(geo.TableEntries)))
	t := &Table{
		geo:       geo,
		folios:    folios,
		leafShift: geo.PageShift + entShift,
	}
	t.dirShift = t.leafShift + entShift
	rest := uint(0)
	if VABits > t.dirShift {
		rest = VABits - t.dirShift
	}
	t.midBits = min(rest, entShift)
	t.topBits = rest - t.midBits
	t.top = make([]atomic.Pointer[midNode], 1<<t.topBits)
	return t
}

// Geometry returns the table's geometry.
func (t *Table) Geometry() folio.Geometry { return t.geo }

// LeafSize is the number of bytes one leaf maps (the PMD size).
func (t *Table) LeafSize() uint64 { return 1 << t.leafShift }

// DirSize is the number of bytes one directory maps.
func (t *Table) DirSize() uint64 { return 1 << t.dirShift }

// LeafEnd returns the end of the leaf that maps addr, or end if that is
// sooner (pmd_addr_end).
func (t *Table) LeafEnd(addr, end uint64) uint64 {
	next := (addr | (t.LeafSize() - 1)) + 1
	return min(next, end)
}

// Stats returns how many directories and leaves the table has allocated and
// the bytes they take.
func (t *Table) Stats() (dirs, leaves, bytes int64) {
	d, l := t.nrDirs.Load(), t.nrLeaves.Load()
	per := int64(t.geo.TableEntries) * 8
	return d, l, d*2*per + l*per
}

func (t *Table) split(addr uint64) (top, mid uint64) {
	v := addr >> t.dirShift
	return v >> t.midBits, v & (1<<t.midBits - 1)
}

// Dir returns the directory that maps addr, or nil if there is none yet.
// Lockless.
func (t *Table) Dir(addr uint64) *Dir {
	if addr>>VABits != 0 {
		return nil
	}
	top, mid := t.split(addr)
	m := t.top[top].Load()
	if m == nil {
		return nil
	}
	return m.dirs[mid].Load()
}

// DirAlloc returns the directory that maps addr, allocating it (and the node
// above it) if needed. It returns nil for an address outside VABits.
func (t *Table) DirAlloc(addr uint64) *Dir {
	if d := t.Dir(addr); d != nil || addr>>VABits != 0 {
		return d
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	top, mid := t.split(addr)
	m := t.top[top].Load()
	if m == nil {
		m = &midNode{dirs: make([]atomic.Pointer[Dir], 1<<t.midBits)}
		t.top[top].Store(m)
	}
	d := m.dirs[mid].Load()
	if d == nil {
		n := t.geo.TableEntries
		d = &Dir{
			t:    t,
			base: addr &^ (t.DirSize() - 1),
			huge: make([]atomic.Uint64, n),
			leaf: make([]atomic.Pointer[Leaf], n),
		}
		m.dirs[mid].Store(d)
		t.nrDirs.Add(1)
	}
	return d
}

// Walk calls fn for every directory that exists and overlaps [start, end),
// in address order, until fn returns false. Lockless.
func (t *Table) Walk(start, end uint64, fn func(d *Dir) bool) {
	for d := t.NextDir(start, end); d != nil; d = t.NextDir(d.base+t.DirSize(), end) {
		if !fn(d) {
			return
		}
	}
}

// NextDir returns the first directory that exists and overlaps
// [addr, end), or nil: the iterator form of Walk, for callers that hold a
// lock a callback could not be checked for. Lockless.
func (t *Table) NextDir(addr, end uint64) *Dir {
	end = min(end, 1<<VABits)
	for addr &^= t.DirSize() - 1; addr < end; {
		top, _ := t.split(addr)
		if t.top[top].Load() == nil {
			addr = (top + 1) << (t.dirShift + t.midBits)
			continue
		}
		if d := t.Dir(addr); d != nil {
			return d
		}
		addr += t.DirSize()
	}
	return nil
}

// hugeEntry returns slot i's huge-entry word: read with and without the
// directory lock (Huge), written with it.
//
// +checklocksignore
func (d *Dir) hugeEntry(i int) *atomic.Uint64 { return &d.huge[i] }

// Base returns the first address the directory maps.
func (d *Dir) Base() uint64 { return d.base }

// Index returns the slot of addr in the directory.
func (d *Dir) Index(addr uint64) int {
	return int((addr >> d.t.leafShift) & uint64(d.t.geo.TableEntries-1))
}

// Addr returns the first address slot i maps.
func (d *Dir) Addr(i int) uint64 { return d.base + uint64(i)<<d.t.leafShift }

// Lock takes the directory lock (the PMD lock).
// +checklocksacquire:d.mu
func (d *Dir) Lock() { d.mu.Lock() }

// Unlock releases the directory lock.
// +checklocksrelease:d.mu
func (d *Dir) Unlock() { d.mu.Unlock() }

// Huge returns slot i's huge entry (none if the slot holds a leaf or
// nothing). Lockless; with the directory lock held it is stable.
func (d *Dir) Huge(i int) PTE { return PTE(d.hugeEntry(i).Load()) }

// Leaf returns slot i's leaf, or nil. Lockless: a leaf found without the
// directory lock may be detached at any time (then it is empty and Dead);
// a walker that locks it checks Dead and retries.
func (d *Dir) Leaf(i int) *Leaf { return d.leaf[i].Load() }

// LeafAlloc returns slot i's leaf, installing an empty one if the slot is
// empty. It returns nil if the slot holds a huge entry.
func (d *Dir) LeafAlloc(i int) *Leaf {
	if l := d.Leaf(i); l != nil {
		return l
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.Leaf(i); l != nil {
		return l
	}
	if !d.Huge(i).None() {
		return nil
	}
	l := d.newLeaf(i)
	d.leaf[i].Store(l)
	return l
}

func (d *Dir) newLeaf(i int) *Leaf {
	l := &Leaf{t: d.t, base: d.Addr(i), ptes: make([]atomic.Uint64, d.t.geo.TableEntries)}
	l.refs.Store(1)
	d.t.nrLeaves.Add(1)
	return l
}

// FreeLeafLocked detaches slot i's leaf if it maps nothing (free_pte_range)
// and reports whether it did. The leaf is marked dead so that a walker that
// found it locklessly retries.
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) FreeLeafLocked(i int) bool {
	l := d.Leaf(i)
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nr != 0 {
		return false
	}
	l.dead = true
	d.leaf[i].Store(nil)
	d.t.nrLeaves.Add(-1)
	return true
}

// SetHugeLocked installs huge entry p in slot i (set_pmd_at). The slot must
// hold nothing, or a leaf that maps nothing (it is detached first). It
// reports false, changing nothing, if the slot is not empty.
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) SetHugeLocked(i int, p PTE) bool {
	if !d.Huge(i).None() || (d.Leaf(i) != nil && !d.FreeLeafLocked(i)) {
		return false
	}
	if p.PFN()&folio.PFN(d.t.geo.TableEntries-1) != 0 {
		panic(fmt.Sprintf("pte: huge entry %v is not PMD-aligned", p))
	}
	d.hugeEntry(i).Store(uint64(p.mkNonCont()))
	return true
}

// ClearHugeLocked clears slot i's huge entry and returns it
// (pmdp_huge_get_and_clear).
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) ClearHugeLocked(i int) PTE { return PTE(d.hugeEntry(i).Swap(0)) }

// WrProtectHugeLocked makes slot i's huge entry read-only
// (pmdp_set_wrprotect).
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) WrProtectHugeLocked(i int) { d.hugeEntry(i).And(^uint64(Write)) }

// ChangeProtHugeLocked sets the bits in set and clears those in clear (Write
// and ProtNone only) on slot i's huge entry (change_huge_pmd).
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) ChangeProtHugeLocked(i int, set, clear PTE) {
	set &= Write | ProtNone
	clear &= Write | ProtNone
	for {
		old := d.hugeEntry(i).Load()
		if old == 0 || d.hugeEntry(i).CompareAndSwap(old, old&^uint64(clear)|uint64(set)) {
			return
		}
	}
}

// SetHugeAccessLocked adds the Write, Dirty and Young bits of entry to slot
// i's huge entry (pmdp_set_access_flags) and reports whether it changed.
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) SetHugeAccessLocked(i int, entry PTE) bool {
	add := uint64(entry & (Write | accessBits))
	return d.hugeEntry(i).Or(add)&add != add
}

// SplitHugeLocked replaces slot i's huge entry by a leaf of PTEs that map
// the same folio with the same permissions, every block folded
// (__split_huge_pmd_locked). It returns the leaf. Lockless walkers see the
// huge entry or the leaf, never neither: the leaf is published before the
// huge entry is cleared. The caller accounts the mapping change (one entire
// mapping becomes TableEntries PTE mappings) before calling.
//
// Preconditions: d's lock is held; slot i holds a huge entry.
// +checklocks:d.mu
func (d *Dir) SplitHugeLocked(i int) *Leaf {
	h := d.Huge(i)
	if !h.Present() {
		panic(fmt.Sprintf("pte: split of slot %d that holds no huge entry", i))
	}
	l := d.newLeaf(i)
	l.mu.Lock()
	l.SetPTEs(0, h, d.t.geo.TableEntries)
	l.mu.Unlock()
	d.leaf[i].Store(l)
	d.hugeEntry(i).Store(0)
	return l
}

// Base returns the first address the leaf maps.
func (l *Leaf) Base() uint64 { return l.base }

// Index returns the entry of addr in the leaf.
func (l *Leaf) Index(addr uint64) int { return int((addr - l.base) >> l.t.geo.PageShift) }

// Addr returns the address entry i maps.
func (l *Leaf) Addr(i int) uint64 { return l.base + uint64(i)<<l.t.geo.PageShift }

// Len returns the number of entries (TableEntries).
func (l *Leaf) Len() int { return len(l.ptes) }

// Lock takes the PTL.
// +checklocksacquire:l.mu
func (l *Leaf) Lock() { l.mu.Lock() }

// Unlock releases the PTL.
// +checklocksrelease:l.mu
func (l *Leaf) Unlock() { l.mu.Unlock() }

// TryLock tries to take the PTL.
// +checklocksignore: the caller learns from the result whether it holds it.
func (l *Leaf) TryLock() bool { return l.mu.TryLock() }

// Dead reports whether the leaf was detached from its directory.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Dead() bool { return l.dead }

// Nr returns the number of entries that map something.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Nr() int { return l.nr }

// Refs returns how many spaces share the leaf.
func (l *Leaf) Refs() int { return int(l.refs.Load()) }

// Share records one more space sharing the leaf.
func (l *Leaf) Share() { l.refs.Add(1) }

// Unshare drops one sharer and reports whether it was the last.
func (l *Leaf) Unshare() bool { return l.refs.Add(-1) == 0 }
