package store

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/zeebo/xxh3"
)

// Options configure a store.
type Options struct {
	// Arena configures the memory the store lives in: the store, its
	// snapshots and the pages copied while they live. Size 0 means 1 GiB
	// for Open, and for Load four times the image or 1 GiB, the larger.
	Arena folio.Config
	// Space configures the store's address space (folio orders, COW unit).
	Space cow.Options
	// Capacity is how many keys the index is sized for up front; 0 means
	// a small index that doubles as keys come.
	Capacity int
}

// Store is the key-value store. All its methods are safe for concurrent
// use; see the package doc for the locking.
type Store struct {
	arena *folio.Arena
	sp    *cow.Space
	ps    uint64 // page size
	leaf  uint64 // bytes one page-table leaf maps: the unit of streaming

	metaAddr cow.Addr
	// slabLimit is the bytes reserved for the slab region.
	// +checklocks:mu
	slabLimit uint64

	seed uint64 // the hash seed, m.seed: set before the store is shared

	mu sync.RWMutex
	// t is the index and slab of sp; the index moves on a rehash.
	// +checklocks:mu
	t tables
	// m is the live header.
	// +checklocks:mu
	m meta
	// wbuf is the writers' scratch.
	// +checklocks:mu
	wbuf []byte
	// hdrBuf is the encoded header.
	// +checklocks:mu
	hdrBuf []byte
	// +checklocks:mu
	closed bool
	// leaked counts bytes of chunks lost to a failed free.
	// +checklocks:mu
	leaked uint64

	refMu sync.Mutex
	// refs counts the store and its open snapshots; the arena closes at 0.
	// +checklocks:refMu
	refs int

	saving atomic.Bool // a Save runs: one at a time
	stats  statsState
}

// Open returns a new, empty store.
func Open(opts Options) (*Store, error) {
	var seed [8]byte
	rand.Read(seed[:])
	return open(opts, binary.LittleEndian.Uint64(seed[:]), indexSlotsFor(opts.Capacity))
}

// indexSlotsFor returns the power-of-two index size that holds keys at a
// load of at most one half.
func indexSlotsFor(keys int) uint64 {
	n := uint64(minIndexSlots)
	for n/2 < uint64(max(keys, 0)) {
		n *= 2
	}
	return n
}

// open builds a store with an empty index of slots slots.
func open(opts Options, seed, slots uint64) (*Store, error) {
	if opts.Arena.Size == 0 {
		opts.Arena.Size = 1 << 30
	}
	a, err := folio.NewArena(opts.Arena)
	if err != nil {
		return nil, err
	}
	sp, err := cow.NewSpace(a, opts.Space)
	if err != nil {
		a.Close()
		return nil, err
	}
	ps := uint64(sp.PageSize())
	s := &Store{arena: a, sp: sp, ps: ps, leaf: ps * ps / 8, seed: seed}
	s.refMu.Lock()
	s.refs = 1
	s.refMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m, s.hdrBuf = newMeta(seed, slots), make([]byte, headerLen)
	// The slab may grow to the whole arena: the reservation is virtual.
	s.slabLimit = roundUp(uint64(a.Stats().TotalPages)*ps, s.leaf)
	rw := cow.ProtRead | cow.ProtWrite
	if s.metaAddr, err = sp.Map(int(roundUp(uint64(headerLen), ps)), rw); err == nil {
		if s.t.index, err = sp.Map(int(s.indexBytes(slots)), rw); err == nil {
			s.t.slab, err = sp.Map(int(s.slabLimit), rw)
		}
	}
	if err == nil {
		err = s.flushMeta()
	}
	if err != nil {
		s.closeLocked()
		return nil, err
	}
	s.t.sp, s.t.slots = sp, slots
	return s, nil
}

// indexBytes is the length of the region of an index of slots slots.
func (s *Store) indexBytes(slots uint64) uint64 { return roundUp(slots*slotSize, s.ps) }

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

// keyHash is the key's hash under the store's seed (saved in the image, so a
// loaded index stays valid).
func keyHash(seed uint64, key []byte) uint64 { return xxh3.HashSeed(key, seed) }

// flushMeta writes the live header to the meta page.
//
// +checklocks:s.mu
func (s *Store) flushMeta() error {
	s.m.encode(s.hdrBuf)
	_, err := s.sp.WriteAt(s.hdrBuf, int64(s.metaAddr))
	return err
}

// Close closes the store. Snapshots taken from it stay readable until
// they are closed; the memory goes back to the host with the last of them.
// Closing a closed store is a no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

// closeLocked is Close.
//
// +checklocks:s.mu
func (s *Store) closeLocked() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return errorsJoin(s.sp.Close(), s.unref())
}

// ref counts one more user of the arena (a snapshot).
func (s *Store) ref() {
	s.refMu.Lock()
	s.refs++
	s.refMu.Unlock()
}

// unref drops a user of the arena and closes it after the last one.
func (s *Store) unref() error {
	s.refMu.Lock()
	defer s.refMu.Unlock()
	if s.refs--; s.refs == 0 {
		return s.arena.Close()
	}
	return nil
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return int(s.m.count)
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) { return s.AppendGet(nil, key) }

// AppendGet appends the value stored under key to dst (ErrNotFound if
// there is none): with a dst of enough capacity it does not allocate.
func (s *Store) AppendGet(dst, key []byte) ([]byte, error) {
	h := keyHash(s.seed, key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return dst, ErrClosed
	}
	return s.t.appendGet(dst, h, key)
}

// checkKV rejects keys and values over the limits.
func checkKV(key, value []byte) error {
	if len(key) > MaxKeyLen || len(value) > MaxValueLen {
		return fmt.Errorf("%w: key of %d bytes, value of %d", ErrTooLarge, len(key), len(value))
	}
	return nil
}

// Put stores value under key, replacing what was there.
func (s *Store) Put(key, value []byte) error {
	if err := checkKV(key, value); err != nil {
		return err
	}
	h := keyHash(s.seed, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	l, err := s.t.lookup(h, key, &s.wbuf, false)
	if err != nil {
		return err
	}
	size := uint64(itemHdr + len(key) + len(value))
	class := classOf(size)
	if l.found && refClass(l.ref) == class && s.inOnePage(refOff(l.ref), size) {
		// Overwrite in place: a write within one page faults (and may
		// fail) before it stores anything, so a failure leaves the old
		// value whole.
		return s.writeItem(refOff(l.ref), key, value)
	}
	if !l.found && l.insEmpty && (s.m.count+s.m.tombs+1)*4 > s.m.slots*3 {
		if err := s.grow(); err != nil {
			return err
		}
		if l, err = s.t.lookup(h, key, &s.wbuf, false); err != nil {
			return err
		}
	}
	off, err := s.allocChunk(class)
	if err != nil {
		return err
	}
	if err := s.writeItem(off, key, value); err != nil {
		s.freeChunk(off, class)
		return err
	}
	pos := l.pos
	if !l.found {
		pos = l.ins
	}
	if err := s.t.writeSlot(pos, h, mkRef(off, class)); err != nil {
		s.freeChunk(off, class)
		return err
	}
	switch {
	case l.found:
		s.freeChunk(refOff(l.ref), refClass(l.ref))
	case l.insEmpty:
		s.m.count++
	default: // reused a tombstone
		s.m.count++
		s.m.tombs--
	}
	return nil
}

// inOnePage reports whether [off, off+size) of the slab lies in one page.
func (s *Store) inOnePage(off, size uint64) bool {
	return off/s.ps == (off+size-1)/s.ps
}

// writeItem writes the item {key, value} into the chunk at off.
//
// +checklocks:s.mu
func (s *Store) writeItem(off uint64, key, value []byte) error {
	n := itemHdr + len(key)
	small := n+len(value) <= 4096
	if small {
		n += len(value)
	}
	if cap(s.wbuf) < n {
		s.wbuf = make([]byte, n)
	}
	b := s.wbuf[:n]
	binary.LittleEndian.PutUint32(b, uint32(len(key)))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(value)))
	copy(b[itemHdr:], key)
	if small {
		copy(b[itemHdr+len(key):], value)
	}
	at := int64(s.t.slab) + int64(off)
	if _, err := s.sp.WriteAt(b, at); err != nil {
		return err
	}
	if !small {
		_, err := s.sp.WriteAt(value, at+int64(n))
		return err
	}
	return nil
}

// Delete removes key, reporting whether it was there.
func (s *Store) Delete(key []byte) (bool, error) {
	h := keyHash(s.seed, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	l, err := s.t.lookup(h, key, &s.wbuf, false)
	if err != nil || !l.found {
		return false, err
	}
	// A slot followed by an empty one ends no probe sequence that goes
	// further: it can be made empty instead of a tombstone.
	next, err := s.t.readSlotRef((l.pos + 1) & (s.m.slots - 1))
	if err != nil {
		return false, err
	}
	mark := uint64(refTomb)
	if next == refEmpty {
		mark = refEmpty
	}
	if err := s.t.writeSlot(l.pos, 0, mark); err != nil {
		return false, err
	}
	s.m.count--
	if mark == refTomb {
		s.m.tombs++
	}
	s.freeChunk(refOff(l.ref), refClass(l.ref))
	return true, nil
}

// Flush removes every key (FLUSHALL): a new empty index and slab replace
// the old ones, whose memory goes back to the arena once no snapshot
// shares it.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	rw := cow.ProtRead | cow.ProtWrite
	slots := uint64(minIndexSlots)
	index, err := s.sp.Map(int(s.indexBytes(slots)), rw)
	if err != nil {
		return err
	}
	if err := s.sp.MapFixed(s.t.slab, int(s.slabLimit), rw); err != nil {
		s.sp.Unmap(index, int(s.indexBytes(slots)))
		return err
	}
	s.sp.Unmap(s.t.index, int(s.indexBytes(s.m.slots)))
	s.t.index, s.t.slots = index, slots
	s.m = newMeta(s.m.seed, slots)
	s.leaked = 0
	return nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
