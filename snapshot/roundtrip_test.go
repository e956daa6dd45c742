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

// TestLoadSparseImage: a Load maps the pages an image holds and no more. A
// source of scattered pages (one every 64 KiB, and a run of 2 MiB) loaded
// into a space of the default orders must not get a large folio around
// each lone page: that would be resident memory of zeros, which the next
// full Save would store too, and each Save-Load cycle would grow.
func TestLoadSparseImage(t *testing.T) {
	e := spacetest.New(t, 256<<20, 4096)
	src := e.Space(cow.Options{Orders: cow.Orders()})
	const size = 16 << 20
	a := e.Map(src, size, cow.ProtRead|cow.ProtWrite)
	pages := 0
	for off := 0; off < size/2; off += 64 << 10 {
		e.Write(src, a+cow.Addr(off), []byte("lone page"))
		pages++
	}
	e.Write(src, a+size-2<<20, spacetest.Fill('r', 2<<20))
	pages += 512
	img, _ := save(t, src, Options{})

	replica := e.Space(cow.Options{}) // huge entries and contpte blocks enabled
	load(t, img, replica)
	if got := replica.Stats().Resident; got != int64(pages) {
		t.Fatalf("a Load of %d pages made %d resident", pages, got)
	}
	if want, got := unprotectedState(t, e, src), unprotectedState(t, e, replica); got != want {
		t.Fatal("the replica differs from the source")
	}
	img2, _ := save(t, replica, Options{})
	if len(img2) > len(img)+len(img)/8 {
		t.Fatalf("saved again after the Load, the image grew from %d to %d bytes", len(img), len(img2))
	}
}

// TestFullImageLeavesOutZeros: a full image stores no page that holds
// only zeros (one byte written in a huge entry is one page, not 512), and
// a delta still carries a page overwritten with zeros since its base,
// which the replica must then read as zeros.
func TestFullImageLeavesOutZeros(t *testing.T) {
	e := spacetest.New(t, 256<<20, 4096)
	src := e.Space(cow.Options{}) // huge entries
	a := e.Map(src, 4<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(src, a+5*4096, []byte("one byte, one page"))
	e.Write(src, a+2<<20, spacetest.Fill('x', 2*4096))
	img, info := save(t, src, Options{})
	if info.Pages != 3 {
		t.Fatalf("full image of 3 non-zero pages in two huge entries: %d pages", info.Pages)
	}
	replica := e.Space(cow.Options{})
	load(t, img, replica)
	if want, got := unprotectedState(t, e, src), unprotectedState(t, e, replica); got != want {
		t.Fatal("the replica differs from the source")
	}

	e.Write(src, a+2<<20, make([]byte, 4096)) // a page of x's becomes zeros
	d, dinfo := save(t, src, Options{Delta: true})
	if dinfo.Pages == 0 {
		t.Fatal("the delta carries no page: the page overwritten with zeros is lost")
	}
	load(t, d, replica)
	e.Expect(replica, a+2<<20, make([]byte, 4096))
	if want, got := unprotectedState(t, e, src), unprotectedState(t, e, replica); got != want {
		t.Fatal("after the delta the replica differs from the source")
	}
}

// TestSaveOfReservedSpace: a region of a terabyte with one page written
// saves as one page, and the Save walks only the slots that hold
// something (a slab reserves address space it may never use).
func TestSaveOfReservedSpace(t *testing.T) {
	e := spacetest.New(t, 64<<20, 4096)
	src := e.Space(cow.Options{Orders: cow.Orders()})
	a := e.Map(src, 1<<40, cow.ProtRead|cow.ProtWrite)
	e.Write(src, a+(1<<40)-4096, []byte("the last page"))
	img, info := save(t, src, Options{})
	if info.Pages != 1 {
		t.Fatalf("one page written in 1 TiB: the image has %d", info.Pages)
	}
	replica := e.Space(cow.Options{Orders: cow.Orders()})
	load(t, img, replica)
	e.Expect(replica, a+(1<<40)-4096, []byte("the last page"))
}
