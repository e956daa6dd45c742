package pin

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// TestStress runs pinners (fast and slow, read-only and read-write, pins and
// gets), writers and forkers on one space for every folio configuration, in
// rounds; after each round it checks the invariants, and at the end every
// page must come back. Each pinner owns its pages (nobody else writes them),
// and checks coherence both ways while it holds a pin; writers write pages
// nobody pins. A data race the detector reports is then a real one.
func TestStress(t *testing.T) {
	for _, cfg := range spacetest.Configs {
		t.Run(cfg.Name, func(t *testing.T) {
			rounds, d := 4, 120*time.Millisecond
			if testing.Short() {
				rounds, d = 2, 50*time.Millisecond
			}
			e := spacetest.New(t, 64<<20, page)
			s := e.Space(cow.Options{Orders: cfg.Orders(e.A.Geometry())})
			const size = 4 << 20
			addr := e.Map(s, size, cow.ProtRead|cow.ProtWrite)
			e.Write(s, addr, spacetest.Fill('s', size))
			const pinners = 3
			// Pinner w owns pages [w*64, w*64+64); writers write the rest.
			owned := func(w int) cow.Addr { return addr + cow.Addr(w*64*page) }
			for range rounds {
				stressRound(t, e, s, addr, size, pinners, owned, d)
				e.Check()
			}
		})
	}
}

func stressRound(t *testing.T, e *spacetest.Env, s *cow.Space, addr cow.Addr, size, pinners int,
	owned func(int) cow.Addr, d time.Duration) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	var children []*cow.Space // the forker's alone until wg.Wait
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		stop.Store(true)
	}
	for w := range pinners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			base := owned(w)
			for i := 0; !stop.Load(); i++ {
				off := cow.Addr(rng.IntN(48) * page)
				n := 8 + rng.IntN(16*page) // at least the tag written through it
				flags := Flags(rng.IntN(4)) & (Write | Longterm)
				if rng.IntN(4) == 0 {
					flags |= FastOnly
				}
				get := rng.IntN(5) == 0
				var p *Pages
				var err error
				if get {
					p, err = Get(s, base+off, n, flags)
				} else {
					p, err = Pin(s, base+off, n, flags)
				}
				if errors.Is(err, ErrFastFailed) {
					if flags&FastOnly == 0 {
						fail("ErrFastFailed without FastOnly")
					}
					continue
				}
				if err != nil {
					fail("pin: %v", err)
					return
				}
				tag := []byte{byte(w), byte(i), byte(i >> 8), 'T'}
				// Through the space, seen through the pin.
				if _, err := s.WriteAt(tag, int64(base+off)); err != nil {
					fail("write: %v", err)
				}
				if !get && !bytes.HasPrefix(spacetest.Join(p.Bytes()), tag) {
					fail("a write through the space is not seen through the pin")
				}
				// Through a read-write pin, seen by the space.
				if !get && flags&Write != 0 {
					tag[3] = 'P'
					copy(p.Bytes()[0], tag)
					got := make([]byte, 4)
					s.ReadAt(got, int64(base+off))
					if !bytes.Equal(got, tag) {
						fail("a write through the pin is not seen by the space: %q", got)
					}
				}
				p.Release()
			}
		}()
	}
	wg.Add(1)
	go func() { // writer of the pages nobody pins
		defer wg.Done()
		rng := rand.New(rand.NewPCG(99, uint64(time.Now().UnixNano())))
		unowned := size/page - pinners*64
		for !stop.Load() {
			p := pinners*64 + rng.IntN(unowned)
			if _, err := s.WriteAt([]byte("writer"), int64(addr)+int64(p*page)); err != nil {
				fail("writer: %v", err)
			}
		}
	}()
	wg.Add(1)
	go func() { // forker: forks, reads a little of the child, closes older children
		defer wg.Done()
		for !stop.Load() {
			c, err := s.Fork()
			if err != nil {
				fail("fork: %v", err)
				return
			}
			buf := make([]byte, 64)
			c.ReadAt(buf, int64(addr))
			children = append(children, c)
			if len(children) > 2 {
				children[0].Close()
				children = children[1:]
			}
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	spaces := append([]*cow.Space{s}, children...)
	if err := cow.Check(spaces...); err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		c.Close()
	}
	if pins, gets, _ := engine(e.A).Outstanding(); pins != 0 || gets != 0 {
		t.Fatalf("%d pins and %d gets outstanding after every Release", pins, gets)
	}
}
