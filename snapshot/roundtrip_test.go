package snapshot

import (
	"bytes"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// TestRoundTrip: a full image and then a chain of deltas, each loaded into
// a replica, leave the replica equal to the source at each image's
// instant, whatever changed in between: writes, new and unmapped regions,
// protections (PROT_NONE included), advice, DontNeed, MapFixed, Remap.
func TestRoundTrip(t *testing.T) {
	for _, c := range spacetest.MatrixFor(t) {
		t.Run(c.Name, func(t *testing.T) {
			e := spacetest.New(t, 256<<20, 4096)
			s := e.Space(cow.Options{Orders: c.Orders(e.A.Geometry())})
			replica := e.Space(cow.Options{Orders: c.Orders(e.A.Geometry())})
			a := e.Map(s, 8<<20, cow.ProtRead|cow.ProtWrite)
			b := e.Map(s, 4<<20, cow.ProtRead|cow.ProtWrite)
			e.Write(s, a, spacetest.Pattern('a', 8<<20, 4096))
			e.Write(s, b+64<<10, []byte("sparse"))
			must(t, s.Advise(b, 1<<20, cow.DontFork))

			img, info := save(t, s, Options{})
			if info.Delta || info.Regions != len(s.Regions()) {
				t.Fatalf("full Save: %+v", info)
			}
			want := unprotectedState(t, e, s)
			load(t, img, replica)
			if got := unprotectedState(t, e, replica); got != want {
				t.Fatalf("after the full load the replica differs from the source")
			}

			steps := []func(){
				func() { e.Write(s, a+4096*3, []byte("delta 1")) },
				func() { // a new region, and an unmapped one
					n := e.Map(s, 1<<20, cow.ProtRead|cow.ProtWrite)
					e.Write(s, n, []byte("new"))
					must(t, s.Unmap(b+2<<20, 1<<20))
				},
				func() { // protections, and data in a PROT_NONE region
					e.Write(s, a+1<<20, []byte("hidden"))
					must(t, s.Protect(a+1<<20, 64<<10, cow.ProtNone))
					must(t, s.Protect(a+2<<20, 1<<20, cow.ProtRead))
				},
				func() { must(t, s.Advise(a+3<<20, 1<<20, cow.DontNeed)) },
				func() { // MapFixed over data: it reads zero
					must(t, s.MapFixed(a+5<<20, 64<<10, cow.ProtRead|cow.ProtWrite))
					e.Write(s, a+5<<20+4096, []byte("fixed"))
				},
				func() { // Remap away and back over a hole
					must(t, s.Remap(a+6<<20, 1<<20, b+2<<20))
					e.Write(s, b+2<<20, []byte("moved"))
				},
				func() {}, // nothing changed
				func() { // advice undone, protection restored
					must(t, s.Advise(b, 1<<20, cow.DoFork))
					must(t, s.Advise(b+1<<20, 1<<20, cow.WipeOnFork))
					must(t, s.Protect(a+2<<20, 1<<20, cow.ProtRead|cow.ProtWrite))
				},
			}
			for i, step := range steps {
				step()
				img, info := save(t, s, Options{Delta: true})
				want := unprotectedState(t, e, s)
				got := load(t, img, replica)
				if got.Pages != info.Pages || !got.Delta {
					t.Fatalf("step %d: Load says %+v, Save said %+v", i, got, info)
				}
				if g := unprotectedState(t, e, replica); g != want {
					t.Fatalf("step %d: after the delta the replica differs from the source:\n%.200q\nwant\n%.200q", i, g, want)
				}
				e.Check()
			}
		})
	}
}

// TestDeltaHoldsWhatWasWritten: with order-0 folios a delta holds exactly
// the pages written since the previous Save, and nothing when nothing was.
func TestDeltaHoldsWhatWasWritten(t *testing.T) {
	e := spacetest.New(t, 64<<20, 4096)
	s := e.Space(cow.Options{Orders: cow.Orders()})
	a := e.Map(s, 16<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, a, bytes.Repeat([]byte{1}, 16<<20))
	_, full := save(t, s, Options{})
	if full.Pages != 4096 {
		t.Fatalf("full image of 16 MiB holds %d pages", full.Pages)
	}
	_, d := save(t, s, Options{Delta: true})
	if d.Pages != 0 {
		t.Fatalf("a delta with nothing written holds %d pages", d.Pages)
	}
	for _, p := range []int{0, 1, 2, 511, 512, 4000} {
		e.Write(s, a+cow.Addr(p*4096)+100, []byte("x"))
	}
	e.Write(s, a+cow.Addr(1*4096), []byte("again")) // the same page twice
	_, d = save(t, s, Options{Delta: true})
	if d.Pages != 6 {
		t.Fatalf("a delta after writes to 6 pages holds %d", d.Pages)
	}
	_, d = save(t, s, Options{Delta: true})
	if d.Pages != 0 {
		t.Fatalf("the next delta holds %d pages", d.Pages)
	}
}
