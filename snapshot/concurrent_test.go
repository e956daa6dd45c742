package snapshot

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/pin"
)

// TestSaveWithWriters: writers keep writing the source (WriteAt, an
// Accessor's lockless stores, writes through R/W pins, DontNeed) while a
// full Save and a chain of deltas are taken, each with Quiesce holding the
// writers off for the instant of its Fork. Each image, loaded in turn into
// a replica, must give exactly the contents the writers had made at that
// instant (a mirror they update under the same lock).
func TestSaveWithWriters(t *testing.T) {
	for _, c := range spacetest.MatrixFor(t) {
		t.Run(c.Name, func(t *testing.T) {
			const size = 8 << 20
			e := spacetest.New(t, 128<<20, 4096)
			s := e.Space(cow.Options{Orders: c.Orders(e.A.Geometry())})
			a := e.Map(s, size, cow.ProtRead|cow.ProtWrite)
			replica := e.Space(cow.Options{Orders: c.Orders(e.A.Geometry())})

			var mu sync.RWMutex // writers hold it for reading per write, Quiesce for writing
			mirror := make([]byte, size)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			writers := []func(rng *rand.Rand, lo, hi int){
				func(rng *rand.Rand, lo, hi int) { // WriteAt
					off := lo + rng.IntN(hi-lo-64)
					b := make([]byte, 1+rng.IntN(64))
					for i := range b {
						b[i] = byte(rng.Uint32())
					}
					mu.RLock()
					if _, err := s.WriteAt(b, int64(a)+int64(off)); err != nil {
						t.Error(err)
					}
					copy(mirror[off:], b)
					mu.RUnlock()
				},
				func(rng *rand.Rand, lo, hi int) { // Accessor stores
					acc := s.NewAccessor()
					defer acc.Close()
					for range 16 {
						off := (lo + rng.IntN(hi-lo-8)) &^ 7
						v := rng.Uint64()
						mu.RLock()
						if err := acc.StoreUint64(a+cow.Addr(off), v); err != nil {
							t.Error(err)
						}
						binary.NativeEndian.PutUint64(mirror[off:], v)
						mu.RUnlock()
					}
				},
				func(rng *rand.Rand, lo, hi int) { // through a R/W pin
					off := (lo + rng.IntN(hi-lo-4096)) &^ 4095
					p, err := pin.Pin(s, a+cow.Addr(off), 4096, pin.Write)
					if err != nil {
						t.Error(err)
						return
					}
					mu.RLock()
					b := p.Bytes()[0]
					k := rng.IntN(4000)
					b[k], b[k+1] = byte(rng.Uint32()), 0xee
					copy(mirror[off:off+4096], b)
					mu.RUnlock()
					p.Release()
				},
				func(rng *rand.Rand, lo, hi int) { // DontNeed, now and then
					if rng.IntN(64) != 0 {
						return
					}
					off := (lo + rng.IntN(hi-lo-4096)) &^ 4095
					mu.RLock()
					if err := s.Advise(a+cow.Addr(off), 4096, cow.DontNeed); err != nil {
						t.Error(err)
					}
					clear(mirror[off : off+4096])
					mu.RUnlock()
				},
			}
			part := size / len(writers)
			for i, w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), 1))
					for {
						select {
						case <-stop:
							return
						default:
						}
						w(rng, i*part, (i+1)*part)
					}
				}()
			}

			var at []byte
			quiesce := quiesceWith(&mu, func() { at = bytes.Clone(mirror) })
			rounds := 6
			if testing.Short() {
				rounds = 3
			}
			for round := range rounds {
				var img bytes.Buffer
				if _, err := Save(&img, s, Options{Delta: round > 0, Quiesce: quiesce}); err != nil {
					t.Fatal(err)
				}
				load(t, img.Bytes(), replica)
				got := e.Read(replica, a, size)
				if i := firstDiff(got, at); i >= 0 {
					t.Fatalf("round %d: the replica differs from the source's instant at offset %#x: %#x, want %#x", round, i, got[i], at[i])
				}
			}
			close(stop)
			wg.Wait()
			e.Check()
		})
	}
}

// quiesceWith returns a Quiesce that holds mu for writing and runs then
// before the Fork; the function it returns unlocks mu.
//
// +checklocksignore: it returns with mu held, by design.
func quiesceWith(mu *sync.RWMutex, then func()) func() func() {
	return func() func() {
		mu.Lock()
		then()
		return mu.Unlock
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
