package store

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/slab"
	"github.com/zeebo/xxh3"
)

// Options configure a store. The zero value works.
type Options struct {
	// Arena configures the memory the store lives in: the store, its
	// snapshots and the pages copied while they live. Size 0 means 1 GiB
	// for Open, and for Load four times the image or 1 GiB, the larger.
	Arena folio.Config
	// Space configures the store's address space (folio orders, COW unit).
	Space cow.Options
	// Capacity is how many keys the index is sized for up front; 0 means
	// small tables that grow as keys come.
	Capacity int
	// Shards is how many independently locked parts the keys are spread
	// over: a power of two up to 256; 0 means 64.
	Shards int
	// Clock returns the time in unix milliseconds, for TTLs; nil means
	// the system clock. Tests give a fake one.
	Clock func() int64
	// MaxRecord is the largest record (a key, its value and 32 bytes)
	// the store takes, and so the largest bucket array and TTL array: a
	// power of two from 256 KiB to 8 GiB; 0 means 32 MiB. A larger record
	// is ErrTooLarge. The allocator reserves address space in proportion
	// (slab.Options.ClassReserve is 8 times it), and a save visits every
	// 2 MiB of that reservation: 32 MiB makes 38 GiB, about 12 ms a save.
	// A loaded store keeps its image's.
	MaxRecord int
}

// Bounds of Options.MaxRecord.
const (
	defaultMaxRecord = 32 << 20
	minMaxRecord     = 256 << 10
	maxMaxRecord     = 8 << 30
)

const defaultShards = 64

// shard is one part of the store: the keys whose hash starts with its
// index. Its lock covers its dict, its TTL array and its allocator. The
// Go fields cache its header in the space (d) and are written through on
// every change: the space always holds the whole state.
type shard struct {
	hdr       cow.Addr // its header in the root region
	maxRecord uint64   // the largest block it may ask for (Options.MaxRecord)
	minExp    uint64   // the smallest table: one page of buckets

	mu sync.RWMutex
	// mem is the writers' handle on the space: an Accessor, which only
	// the holder of mu for writing may use (an Accessor is one
	// goroutine's). Readers, who share mu, read through the Space or an
	// Accessor of their own (Reader).
	// +checklocks:mu
	mem mem
	// +checklocks:mu
	d dictState
	// alloc is the store's allocator (every shard has the same one): the
	// field is the shard's so that Flush swaps it under the shard's lock.
	// +checklocks:mu
	alloc allocator
	// rbuf is the writers' read scratch (a record looked up), wbuf the
	// record being written.
	// +checklocks:mu
	rbuf []byte
	// +checklocks:mu
	wbuf []byte
	// dirty counts the changes (rdb_changes_since_last_save).
	// +checklocks:mu
	dirty uint64
	// expired counts the keys the shard deleted for their TTL.
	// +checklocks:mu
	expired uint64

	_ [64]byte // keep shards' locks on separate cache lines
}

// Store is the key-value store. All its methods are safe for concurrent
// use; see the package doc for the locking.
type Store struct {
	arena      *folio.Arena
	sp         *cow.Space
	spMem      mem // the Space itself, for readers without an Accessor
	ps         int
	root       cow.Addr // the superblock; the shard headers follow it
	seed       uint64
	shardShift uint // a key's shard is its hash >> shardShift
	shards     []shard
	clock      func() int64
	maxRecord  uint64 // the superblock's: the largest record, bucket array, TTL array

	// slab is the allocator, with where its reservation ends; Flush
	// swaps it (with every shard's lock held), the cron reads it.
	slab atomic.Pointer[slabRef]

	// closed is set with every shard locked: a shard's lock holder sees
	// it stable.
	closed atomic.Bool
	// saves counts the saves running: tables do not grow meanwhile.
	saves  atomic.Int32
	avgTTL atomic.Int64 // milliseconds, a running average the active expiry keeps

	cronMu sync.Mutex
	// +checklocks:cronMu
	expireNext int
	// +checklocks:cronMu
	rehashNext int
	// collapseNext is where collapseSome goes on; noCollapse: the arena
	// has no PMD-order folios to collapse into.
	// +checklocks:cronMu
	collapseNext cow.Addr
	// +checklocks:cronMu
	noCollapse bool
	// collapseBudget is how long a Maintain call collapses: collapseBudget
	// (tests change it).
	// +checklocks:cronMu
	collapseBudget time.Duration
	// +checklocks:cronMu
	rng *rand.Rand

	refMu sync.Mutex
	// refs counts the store and its open snapshots; the arena closes at 0.
	// +checklocks:refMu
	refs int

	saving    atomic.Bool // a Save runs: one at a time
	keepSplit atomic.Bool // no collapses: KeepSplit
	stats     statsState
}

// slabRef is the store's allocator and the bytes it reserved from its
// root (the superblock records both).
type slabRef struct {
	a   *slab.Allocator
	len uint64
}

// classReserve is each size class's reservation (slab.Options.ClassReserve)
// for records of up to maxRecord bytes: the largest block is an eighth of
// it.
func classReserve(maxRecord uint64) uint64 { return max(8*maxRecord, 2<<20) }

// newSlab makes the store's allocator in sp, for records of up to
// maxRecord bytes, and measures its reservation.
func newSlab(sp *cow.Space, maxRecord uint64) (*slabRef, error) {
	before := mappedBytes(sp)
	a, err := slab.New(sp, slab.Options{ClassReserve: int64(classReserve(maxRecord))})
	if err != nil {
		return nil, err
	}
	return &slabRef{a: a, len: mappedBytes(sp) - before}, nil
}

// mappedBytes is the length of every region of sp.
func mappedBytes(sp *cow.Space) uint64 {
	var n uint64
	for _, r := range sp.Regions() {
		n += uint64(r.Length)
	}
	return n
}

// Open returns a new, empty store.
func Open(opts Options) (*Store, error) {
	var seed [8]byte
	crand.Read(seed[:])
	return create(opts, binary.LittleEndian.Uint64(seed[:]))
}

func (o *Options) fill() error {
	if o.Arena.Size == 0 {
		o.Arena.Size = 1 << 30
	}
	if o.Shards == 0 {
		o.Shards = defaultShards
	}
	if o.MaxRecord == 0 {
		o.MaxRecord = defaultMaxRecord
	}
	if o.MaxRecord < minMaxRecord || o.MaxRecord > maxMaxRecord || o.MaxRecord&(o.MaxRecord-1) != 0 {
		return fmt.Errorf("%w: MaxRecord %d: want a power of two from %d to %d", cow.ErrInvalid, o.MaxRecord, minMaxRecord, maxMaxRecord)
	}
	if o.Shards < 1 || o.Shards > 1<<maxShardBits || o.Shards&(o.Shards-1) != 0 {
		return fmt.Errorf("%w: %d shards: want a power of two up to %d", cow.ErrInvalid, o.Shards, 1<<maxShardBits)
	}
	if o.Clock == nil {
		o.Clock = func() int64 { return time.Now().UnixMilli() }
	}
	return nil
}

// create builds an empty store in a new arena.
func create(opts Options, seed uint64) (*Store, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	a, sp, err := newSpace(opts)
	if err != nil {
		return nil, err
	}
	ps := sp.PageSize()
	fail := func(err error) (*Store, error) {
		sp.Close()
		a.Close()
		return nil, err
	}
	rw := cow.ProtRead | cow.ProtWrite
	root, err := sp.Map((1+opts.Shards)*ps, rw)
	if err != nil {
		return fail(err)
	}
	heap, err := newSlab(sp, uint64(opts.MaxRecord))
	if err != nil {
		return fail(err)
	}
	sb := superblock{shardBits: uint32(bits.TrailingZeros(uint(opts.Shards))), seed: seed,
		shards: root + cow.Addr(ps), slab: heap.a.Root(), slabLen: heap.len, maxRecord: uint64(opts.MaxRecord), pageSize: uint32(ps)}
	var b [supLen]byte
	sb.encode(b[:])
	if _, err := sp.WriteAt(b[:], int64(root)); err != nil {
		return fail(err)
	}
	s := newStore(a, sp, root, sb, heap, opts)
	perShard := uint64(max(opts.Capacity, 0)) / uint64(opts.Shards)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		err := sh.reset(expExceeding(perShard, sh.minExp))
		sh.mu.Unlock()
		if err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// newSpace makes the arena and the space of a store.
func newSpace(opts Options) (*folio.Arena, *cow.Space, error) {
	a, err := folio.NewArena(opts.Arena)
	if err != nil {
		return nil, nil, err
	}
	sp, err := cow.NewSpace(a, opts.Space)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, sp, nil
}

// newStore returns the Go side of a store whose state is in sp; the
// shards' dicts are for the caller to fill.
func newStore(a *folio.Arena, sp *cow.Space, root cow.Addr, sb superblock, heap *slabRef, opts Options) *Store {
	ps := sp.PageSize()
	s := &Store{arena: a, sp: sp, spMem: mem{sp: sp}, ps: ps, maxRecord: sb.maxRecord, root: root, seed: sb.seed, shardShift: 64 - uint(sb.shardBits),
		shards: make([]shard, 1<<sb.shardBits), clock: opts.Clock}
	s.slab.Store(heap)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.hdr, sh.maxRecord = sb.shards+cow.Addr(i*ps), sb.maxRecord
		sh.minExp = uint64(bits.TrailingZeros(uint(ps / 8)))
		sh.mu.Lock()
		sh.mem, sh.alloc = mem{acc: sp.NewAccessor()}, heap.a
		sh.mu.Unlock()
	}
	s.refMu.Lock()
	s.refs = 1
	s.refMu.Unlock()
	s.cronMu.Lock()
	s.rng = rand.New(rand.NewPCG(sb.seed, uint64(time.Now().UnixNano())))
	s.collapseBudget = collapseBudget
	s.cronMu.Unlock()
	return s
}

// reset gives the shard an empty table of 2^exp buckets and no TTL array.
// Its allocator is new (or reset): nothing is freed.
//
// +checklocks:sh.mu
func (sh *shard) reset(exp uint64) error {
	t := table{exp: exp}
	addr, err := sh.alloc.Alloc(t.bytes())
	if err != nil {
		return err
	}
	t.addr = addr
	sh.d = dictState{t: [2]table{t, {}}}
	return sh.writeHeader()
}

// keyHash is the key's hash under the store's seed (kept in the
// superblock, so that a loaded index stays valid).
func keyHash(seed uint64, key []byte) uint64 { return xxh3.HashSeed(key, seed) }

// shardOf returns the shard of hash h.
func (s *Store) shardOf(h uint64) *shard { return &s.shards[h>>s.shardShift] }

// Now returns the store's clock, in unix milliseconds.
func (s *Store) Now() int64 { return s.clock() }

func (s *Store) now() int64 { return s.clock() }

// lockAll takes every shard's lock, in index order, then quiesces the
// allocator (its class locks): the quiesce. Nothing of the store's state
// changes until unlockAll calls the resume it returns.
//
// +checklocksignore: every shard's lock, a dynamic set.
func (s *Store) lockAll() (resume func()) {
	for i := range s.shards {
		s.shards[i].mu.Lock()
	}
	return s.slab.Load().a.Quiesce()
}

// unlockAll ends lockAll: resume is what it returned.
//
// +checklocksignore: every shard's lock, a dynamic set.
func (s *Store) unlockAll(resume func()) {
	resume()
	for i := range s.shards {
		s.shards[i].mu.Unlock()
	}
}

// Close closes the store. Snapshots taken from it stay readable until
// they are closed; the memory goes back to the host with the last of them.
// Closing a closed store is a no-op.
func (s *Store) Close() error {
	resume := s.lockAll()
	if s.closed.Load() {
		s.unlockAll(resume)
		return nil
	}
	s.closed.Store(true)
	for i := range s.shards {
		s.shards[i].closeMem()
	}
	err := s.sp.Close()
	s.unlockAll(resume)
	return errorsJoin(err, s.unref())
}

// closeMem closes the shard's Accessor, with its lock held.
//
// +checklocksignore: the caller holds sh.mu (Close, every shard's lock).
func (sh *shard) closeMem() { sh.mem.acc.Close() }

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

// Len returns the number of keys, those past their TTL but not yet
// deleted included (as Redis's DBSIZE).
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += int(sh.d.count)
		sh.mu.RUnlock()
	}
	return n
}

// Flush removes every key (FLUSHALL): the store takes a new allocator and
// unmaps the old one's reservation, whose memory goes back to the arena
// once no snapshot shares it (a time that does not grow with the keys).
//
// +checklocksignore: it holds every shard's lock, a dynamic set.
func (s *Store) Flush() error {
	for i := range s.shards {
		s.shards[i].mu.Lock()
	}
	defer func() {
		for i := range s.shards {
			s.shards[i].mu.Unlock()
		}
	}()
	if s.closed.Load() {
		return ErrClosed
	}
	old := s.slab.Load()
	heap, err := newSlab(s.sp, s.maxRecord)
	if err != nil {
		return err
	}
	// The superblock first: from here on it names the new allocator.
	var b [supLen]byte
	if _, err := s.sp.ReadAt(b[:], int64(s.root)); err != nil {
		return err
	}
	sb, err := decodeSuper(b[:])
	if err != nil {
		return err
	}
	sb.slab, sb.slabLen = heap.a.Root(), heap.len
	sb.encode(b[:])
	if _, err := s.sp.WriteAt(b[:], int64(s.root)); err != nil {
		return err
	}
	s.slab.Store(heap)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.alloc = heap.a
		if err := sh.reset(sh.minExp); err != nil {
			return err
		}
		sh.dirty++
	}
	return s.sp.Unmap(old.a.Root(), int(old.len))
}

// Maintain does the store's background work: it moves buckets of the
// shards whose rehash the writers have not finished (100 at a time, as
// Redis's incrementallyRehash) and starts shrinking tables less than a
// tenth full, for up to budget; and first it maps huge again the ranges a
// save left mapped page by page, for up to 20 ms of its own (collapse.go).
// The store's cron calls it ten times a second.
func (s *Store) Maintain(budget time.Duration) error {
	s.cronMu.Lock()
	defer s.cronMu.Unlock()
	if err := s.collapseSome(); err != nil && !errors.Is(err, cow.ErrClosed) {
		return err
	}
	start := time.Now()
	canResize := s.saves.Load() == 0
	for range len(s.shards) {
		sh := &s.shards[s.rehashNext]
		s.rehashNext = (s.rehashNext + 1) % len(s.shards)
		sh.mu.Lock()
		var err error
		switch {
		case s.closed.Load():
			err = ErrClosed
		case sh.d.rehashing():
			err = sh.rehashStep(100)
		case canResize:
			err = sh.shrinkIfNeeded()
		}
		sh.mu.Unlock()
		if err != nil {
			return err
		}
		if time.Since(start) > budget {
			break
		}
	}
	return nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }
