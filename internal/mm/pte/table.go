package pte

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
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
	user      uint16 // the id leaves allocated here start with as their user
	leafShift uint   // address bits one leaf maps (the PMD shift)
	dirShift  uint   // address bits one directory maps
	midBits   uint   // directories per mid-level node, log2
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
	// tlbGen is each slot's TLB generation: bumped after any change that
	// removes, replaces or write-protects its huge entry (see Leaf.tlbGen).
	tlbGen []atomic.Uint64
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
	// zero counts the entries that map the zero page.
	// +checklocks:mu
	zero int

	// users are the tables (spaces) whose directories point to this leaf,
	// by the user id each Table was created with. One user: the leaf is
	// private. More: it is shared after a fork (on-demand fork), and none
	// of them may change an entry without first taking a copy of its own.
	// users[0] is the user the leaf's folio mappings are accounted to.
	// +checklocks:mu
	users []uint16
	// nusers is len(users), for lockless readers.
	nusers atomic.Int32
	// maybePinned is a sticky hint that a page was pinned through this
	// leaf: fork does not share such a leaf before it checked its folios.
	maybePinned atomic.Bool
	// maybeHeld is a sticky hint that a plain reference (a Get) was taken
	// on a page through this leaf: a space that closes while sharing the
	// leaf looks for such references only in leaves that carry it.
	maybeHeld atomic.Bool
	// maybeWritten is a sticky hint that an entry was stored with
	// SoftDirty: a leaf without it has no entry marked written, so a
	// snapshot that looks for written pages skips it whole.
	maybeWritten atomic.Bool
	// mods counts the calls that changed entries (bumped under the PTL
	// by every primitive that stores one): equal counts read at two
	// instants mean the entries did not change in between.
	mods atomic.Uint64

	// tlbGen is the leaf's TLB generation, what software TLBs (cow's
	// Accessor, the seqlock reads) validate a translation against: bumped
	// after any change that removes an entry, replaces the page it maps or
	// takes a permission away (a TLB flush), and after the leaf leaves a
	// slot or becomes shared. Adding a mapping or a permission does not
	// bump it: a reader that read the entry before sees less than it may.
	// The bump follows the change, so a reader that loads the generation
	// and then the entry sees the change if it sees the bump; and it comes
	// before the old page can be freed, so a reader that read a page being
	// reused finds the generation moved.
	tlbGen atomic.Uint64
}

// New returns an empty table for geometry geo. folios resolves pages to
// folios when a contpte block is folded; it may be nil, and then blocks are
// folded only by SetPTEs (whose caller vouches for the folio). user is the id
// of the table's owner (a space): the first user of every leaf it allocates.
func New(geo folio.Geometry, folios Folios, user uint16) *Table {
	entShift := uint(bits.TrailingZeros(uint(geo.TableEntries)))
	t := &Table{
		geo:       geo,
		folios:    folios,
		user:      user,
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
			t:      t,
			base:   addr &^ (t.DirSize() - 1),
			huge:   make([]atomic.Uint64, n),
			leaf:   make([]atomic.Pointer[Leaf], n),
			tlbGen: make([]atomic.Uint64, n),
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
	l := d.NewLeaf(i)
	d.leaf[i].Store(l)
	d.t.nrLeaves.Add(1)
	return l
}

// NewLeaf returns an empty leaf for slot i whose only user is the table's
// owner, not yet installed anywhere: a copy being built.
func (d *Dir) NewLeaf(i int) *Leaf {
	l := &Leaf{t: d.t, base: d.Addr(i), ptes: make([]atomic.Uint64, d.t.geo.TableEntries)}
	l.mu.Lock()
	l.users = []uint16{d.t.user}
	l.mu.Unlock()
	l.nusers.Store(1)
	return l
}

// InstallLeafLocked puts leaf l, which another table already uses, into
// empty slot i and makes this table's owner one of its users: fork sharing
// a leaf with the child.
//
// Preconditions: d's lock and l's PTL are held; the slot is empty.
// +checklocks:d.mu
// +checklocks:l.mu
func (d *Dir) InstallLeafLocked(i int, l *Leaf) {
	if d.Leaf(i) != nil || !d.Huge(i).None() || l.base != d.Addr(i) {
		panic(fmt.Sprintf("pte: installing a leaf for %#x in slot %d (%#x) that is not empty", l.base, i, d.Addr(i)))
	}
	l.users = append(l.users, d.t.user)
	l.nusers.Store(int32(len(l.users)))
	d.leaf[i].Store(l)
	d.t.nrLeaves.Add(1)
	l.flushTLB() // shared now: its old users may no longer write through it
}

// ReplaceLeafLocked replaces slot i's leaf old, which is shared, by private
// copy new (built with NewLeaf), and removes this table's owner from old's
// users. It returns whether the owner was old's accounting user (users[0]):
// then the caller moves the accounting of old's mappings to old's new first
// user.
//
// Preconditions: d's lock and both PTLs are held.
// +checklocks:d.mu
// +checklocks:old.mu
func (d *Dir) ReplaceLeafLocked(i int, old, new *Leaf) (wasAccounting bool) {
	if d.Leaf(i) != old {
		panic("pte: replacing a leaf that is not in the slot")
	}
	wasAccounting = old.removeUser(d.t.user)
	d.leaf[i].Store(new)
	old.flushTLB()
	return wasAccounting
}

// UnlinkLeafLocked takes slot i's shared leaf out of this table, leaving it
// to its other users, and reports whether this table's owner was its
// accounting user.
//
// Preconditions: d's lock and the leaf's PTL are held; the leaf is shared.
// +checklocks:d.mu
// +checklocks:l.mu
func (d *Dir) UnlinkLeafLocked(i int, l *Leaf) (wasAccounting bool) {
	if d.Leaf(i) != l || len(l.users) < 2 {
		panic("pte: unlinking a leaf that is not in the slot or not shared")
	}
	wasAccounting = l.removeUser(d.t.user)
	d.leaf[i].Store(nil)
	d.t.nrLeaves.Add(-1)
	l.flushTLB()
	return wasAccounting
}

// removeUser drops u from the users and reports whether it was users[0].
//
// +checklocks:l.mu
func (l *Leaf) removeUser(u uint16) bool {
	for k, v := range l.users {
		if v == u {
			l.users = append(l.users[:k:k], l.users[k+1:]...)
			l.nusers.Store(int32(len(l.users)))
			return k == 0
		}
	}
	panic(fmt.Sprintf("pte: user %d does not use the leaf at %#x", u, l.base))
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
	if l.nr != 0 || len(l.users) > 1 {
		return false
	}
	l.dead = true
	d.leaf[i].Store(nil)
	d.t.nrLeaves.Add(-1)
	l.flushTLB()
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

// TLBGen returns slot i's TLB generation (see Leaf.TLBGen), which a
// translation of its huge entry is valid against.
func (d *Dir) TLBGen(i int) uint64 { return d.tlbGen[i].Load() }

// flushTLB bumps slot i's TLB generation.
func (d *Dir) flushTLB(i int) { d.tlbGen[i].Add(1) }

// ClearHugeLocked clears slot i's huge entry and returns it
// (pmdp_huge_get_and_clear).
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) ClearHugeLocked(i int) PTE {
	old := PTE(d.hugeEntry(i).Swap(0))
	d.flushTLB(i)
	return old
}

// WrProtectHugeLocked makes slot i's huge entry read-only
// (pmdp_set_wrprotect).
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) WrProtectHugeLocked(i int) {
	d.hugeEntry(i).And(^uint64(Write))
	d.flushTLB(i)
}

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
			break
		}
	}
	if takesAway(set, clear) {
		d.flushTLB(i)
	}
}

// takesAway reports whether a protection change removes a permission.
func takesAway(set, clear PTE) bool { return clear&Write != 0 || set&ProtNone != 0 }

// SetHugeAccessLocked adds the Write, Dirty and Young bits of entry to slot
// i's huge entry (pmdp_set_access_flags) and reports whether it changed.
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) SetHugeAccessLocked(i int, entry PTE) bool {
	add := uint64(entry & (Write | accessBits))
	return d.hugeEntry(i).Or(add)&add != add
}

// ClearSoftDirtyHugeLocked write-protects slot i's huge entry and clears its
// SoftDirty (clear_soft_dirty_pmd).
//
// Preconditions: d's lock is held.
// +checklocks:d.mu
func (d *Dir) ClearSoftDirtyHugeLocked(i int) {
	d.hugeEntry(i).And(^uint64(Write | SoftDirty))
	d.flushTLB(i)
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
	l := d.NewLeaf(i)
	l.mu.Lock()
	l.SetPTEs(0, h, d.t.geo.TableEntries)
	l.mu.Unlock()
	d.leaf[i].Store(l)
	d.t.nrLeaves.Add(1)
	d.hugeEntry(i).Store(0)
	d.flushTLB(i) // the same pages, but through a leaf now
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

// Shared reports whether more than one table uses the leaf. Lockless: a
// writer that sees false must still have entered whatever excludes fork
// (the space's lockless section or its map lock).
func (l *Leaf) Shared() bool { return l.nusers.Load() > 1 }

// Users returns the ids of the tables that use the leaf; the first is the
// one its folio mappings are accounted to.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Users() []uint16 { return l.users }

// Pages returns how many entries map a folio's page (not the zero page).
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Pages() int { return l.nr - l.zero }

// TLBGen returns the leaf's TLB generation: a translation through the leaf
// read after it is valid until it moves.
func (l *Leaf) TLBGen() uint64 { return l.tlbGen.Load() }

// flushTLB bumps the leaf's TLB generation.
func (l *Leaf) flushTLB() { l.tlbGen.Add(1) }

// FlushTLB bumps the leaf's TLB generation for a change the primitives
// cannot see (none today: they flush on their own). Called with the PTL
// held.
//
// +checklocks:l.mu
func (l *Leaf) FlushTLB() { l.flushTLB() }

// MaybePinned reports the sticky hint that a page was pinned through the
// leaf.
func (l *Leaf) MaybePinned() bool { return l.maybePinned.Load() }

// SetMaybePinned sets the hint. A pinner sets it before it pins, so that a
// fork that did not see it is caught by the pinner's wpSeq recheck.
func (l *Leaf) SetMaybePinned() {
	if !l.maybePinned.Load() {
		l.maybePinned.Store(true)
	}
}

// MaybeHeld reports the sticky hint that a page was referenced (Get)
// through the leaf.
func (l *Leaf) MaybeHeld() bool { return l.maybeHeld.Load() }

// SetMaybeHeld sets the hint, before the reference is taken.
func (l *Leaf) SetMaybeHeld() {
	if !l.maybeHeld.Load() {
		l.maybeHeld.Store(true)
	}
}

// ClearMaybePinned clears the hint once no folio the leaf maps is pinned.
func (l *Leaf) ClearMaybePinned() { l.maybePinned.Store(false) }

// MaybeWritten reports the sticky hint that an entry of the leaf was
// stored marked written (SoftDirty).
func (l *Leaf) MaybeWritten() bool { return l.maybeWritten.Load() }

// ClearMaybeWritten clears the hint once no entry is marked written.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) ClearMaybeWritten() { l.maybeWritten.Store(false) }

// Mods returns the leaf's modification count: if it reads the same at two
// instants, no entry changed in between.
func (l *Leaf) Mods() uint64 { return l.mods.Load() }

// changed bumps the modification count; every primitive that stores an
// entry calls it, under the PTL.
func (l *Leaf) changed() { l.mods.Add(1) }

// noteWritten sets the hint if p is marked written. Every store of an
// entry that may carry SoftDirty calls it, under the PTL.
func (l *Leaf) noteWritten(p PTE) {
	if p&SoftDirty != 0 && !l.maybeWritten.Load() {
		l.maybeWritten.Store(true)
	}
}
