package cow

import (
	"encoding/binary"
	"errors"
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stressSpace is a space of the stress test with its fork ancestry.
type stressSpace struct {
	s         *Space
	id        uint32
	parent    *stressSpace
	forkClock uint64 // the clock when the fork that made it returned
}

// stress runs writers, readers, forkers, closers and zappers on a family of
// spaces, in rounds; between rounds it checks the invariants and that every
// page a space reads was written by itself or inherited from an ancestor
// before the fork that separated them.
type stress struct {
	t      *testing.T
	e      *env
	addr   Addr
	pages  []Addr
	clock  atomic.Uint64
	nextID atomic.Uint32

	mu   sync.Mutex
	live []*stressSpace // +checklocks:mu

	// pageMu serialises the test's own reads and writes of one page index
	// (in any space): a read racing a write of the same page of the same
	// space is a data race in the caller, which -race rightly reports.
	// Accesses of one page index in different spaces are not serialised:
	// a race between them would be an isolation bug.
	pageMu [stressPages]sync.Mutex
}

const (
	stressRegion = 4 << 20
	stressPages  = 48
	stressMax    = 8 // live spaces at most
)

func TestStress(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			rounds, d := 4, 150*time.Millisecond
			if testing.Short() {
				rounds, d = 2, 60*time.Millisecond
			}
			st := newStress(t, cfg)
			for range rounds {
				st.round(d)
				st.verify()
			}
			st.closeAll()
		})
	}
}

func newStress(t *testing.T, cfg config) *stress {
	e := newEnv(t, 64<<20)
	st := &stress{t: t, e: e}
	s := e.space(cfg.orders(e.a.Geometry()))
	st.addr = mustMap(t, s, stressRegion, ProtRead|ProtWrite)
	for i := range stressPages {
		st.pages = append(st.pages, st.addr+Addr((i*37)%(stressRegion/4096))*4096)
	}
	st.add(&stressSpace{s: s})
	return st
}

func (st *stress) add(ss *stressSpace) {
	ss.id = st.nextID.Add(1)
	st.mu.Lock()
	st.live = append(st.live, ss)
	st.mu.Unlock()
}

func (st *stress) pick(rng *rand.Rand) *stressSpace {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.live[rng.IntN(len(st.live))]
}

// stamp fills a page with a tag: the writing space and the clock.
func stamp(id uint32, clock uint64) []byte {
	b := make([]byte, 4096)
	for i := 0; i < len(b); i += 16 {
		binary.LittleEndian.PutUint32(b[i:], id)
		binary.LittleEndian.PutUint64(b[i+8:], clock)
	}
	return b
}

func (st *stress) round(d time.Duration) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	worker := func(seed uint64, fn func(rng *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
			for !stop.Load() {
				fn(rng)
			}
		}()
	}
	ignore := func(err error) {
		// A space closed under the call, or a write racing the zapper's
		// read-only moment: both correct answers.
		if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrProtection) {
			st.t.Errorf("unexpected error: %v", err)
			stop.Store(true)
		}
	}
	for w := range 2 { // writers
		worker(uint64(w), func(rng *rand.Rand) {
			ss := st.pick(rng)
			p := rng.IntN(len(st.pages))
			st.pageMu[p].Lock()
			_, err := ss.s.WriteAt(stamp(ss.id, st.clock.Add(1)), int64(st.pages[p]))
			st.pageMu[p].Unlock()
			ignore(err)
		})
	}
	worker(10, func(rng *rand.Rand) { // reader
		ss := st.pick(rng)
		p := rng.IntN(len(st.pages))
		st.pageMu[p].Lock()
		_, err := ss.s.ReadAt(make([]byte, 4096), int64(st.pages[p]))
		st.pageMu[p].Unlock()
		ignore(err)
	})
	worker(20, func(rng *rand.Rand) { // forker
		st.mu.Lock()
		n := len(st.live)
		st.mu.Unlock()
		if n >= stressMax {
			time.Sleep(time.Millisecond)
			return
		}
		ss := st.pick(rng)
		c, err := ss.s.Fork()
		if err != nil {
			ignore(err)
			return
		}
		st.add(&stressSpace{s: c, parent: ss, forkClock: st.clock.Load()})
	})
	worker(30, func(rng *rand.Rand) { // closer
		st.mu.Lock()
		if len(st.live) <= 2 {
			st.mu.Unlock()
			time.Sleep(time.Millisecond)
			return
		}
		i := rng.IntN(len(st.live))
		ss := st.live[i]
		st.live = append(st.live[:i], st.live[i+1:]...)
		st.mu.Unlock()
		ignore(ss.s.Close())
		time.Sleep(2 * time.Millisecond)
	})
	worker(40, func(rng *rand.Rand) { // zapper: drops pages, splits, protects, collapses
		ss := st.pick(rng)
		off := Addr(rng.IntN(stressRegion/4096-8)) * 4096
		switch rng.IntN(6) {
		case 4:
			// A read in flight may hold a folio (ErrBusy), and the small
			// arena may have no free 2 MiB block: both correct answers.
			if err := ss.s.Advise(st.addr, stressRegion, Collapse); !errors.Is(err, ErrBusy) && !errors.Is(err, folio.ErrNoMemory) {
				ignore(err)
			}
		case 5:
			ignore(ss.s.WriteProtect(st.addr+off, 8*4096))
		case 0:
			ignore(ss.s.Advise(st.addr+off, 8*4096, DontNeed))
		case 1:
			ss.s.SplitDeferred()
		case 2:
			ignore(ss.s.Protect(st.addr+off, 8*4096, ProtRead))
			ignore(ss.s.Protect(st.addr+off, 8*4096, ProtRead|ProtWrite))
		case 3:
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
}

// verify checks the invariants and every page of every live space: it is
// not torn (every write lands wholly before or after a fork's snapshot, and
// with the writers stopped the last write of each page is whole), and its
// tag is its own, or an ancestor's written before the fork that separated
// them.
func (st *stress) verify() {
	st.mu.Lock()
	live := append([]*stressSpace(nil), st.live...)
	st.mu.Unlock()
	spaces := make([]*Space, len(live))
	for i, ss := range live {
		spaces[i] = ss.s
	}
	if err := Check(spaces...); err != nil {
		st.t.Fatal(err)
	}
	for _, ss := range live {
		for _, p := range st.pages {
			b := read(st.t, ss.s, p, 4096)
			for i := 16; i < len(b); i += 16 {
				if string(b[i:i+16]) != string(b[:16]) {
					st.t.Fatalf("space %d: page %#x is torn at byte %d", ss.id, uint64(p), i)
				}
			}
			id, clock := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint64(b[8:])
			if id == 0 || id == ss.id {
				continue
			}
			ok := false
			for a, limit := ss, uint64(0); a.parent != nil; a = a.parent {
				if limit == 0 || a.forkClock < limit {
					limit = a.forkClock
				}
				if a.parent.id == id {
					ok = clock <= limit
					break
				}
			}
			if !ok {
				st.t.Fatalf("space %d reads page %#x written by space %d at clock %d: not its own, nor an ancestor's from before the fork",
					ss.id, uint64(p), id, clock)
			}
		}
	}
}

func (st *stress) closeAll() {
	st.mu.Lock()
	live := st.live
	st.live = nil
	st.mu.Unlock()
	for _, ss := range live {
		if err := ss.s.Close(); err != nil {
			st.t.Fatal(err)
		}
	}
}
