package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// smallSource returns a space with three small regions (one PROT_NONE,
// one advised) and a few written pages: images of it are small enough to
// damage at every byte.
func smallSource(t testing.TB, e *spacetest.Env) (*cow.Space, cow.Addr) {
	s := e.Space(cow.Options{Orders: cow.Orders()})
	a := e.Map(s, 64<<10, cow.ProtRead|cow.ProtWrite)
	e.Write(s, a+4096, []byte("first page"))
	e.Write(s, a+3*4096+10, []byte("second page"))
	must(t, s.Protect(a+8*4096, 4096, cow.ProtNone))
	must(t, s.Advise(a+12*4096, 4096, cow.WipeOnFork))
	return s, a
}

// damaged calls try with every truncation of img and every one-byte
// alteration of it (every byte in -short mode's header and record headers,
// every 61st elsewhere).
func damaged(t *testing.T, img []byte, try func(what string, bad []byte)) {
	for k := range len(img) {
		try(fmt.Sprintf("truncated to %d bytes", k), img[:k])
	}
	bad := bytes.Clone(img)
	for k := range len(img) {
		if testing.Short() && k > headerSize+recHeaderSize && k%61 != 0 {
			continue
		}
		bad[k] ^= 0x5a
		try(fmt.Sprintf("byte %d altered", k), bad)
		bad[k] = img[k]
	}
}

// TestDamagedImages: every truncation point and altered byte of a full
// image and of a delta is ErrCorrupt (never ErrMismatch: the checksums
// cover the headers), and the target is left as it was: empty for the
// full image, at its base for the delta, which then still loads.
func TestDamagedImages(t *testing.T) {
	e := spacetest.New(t, 64<<20, 4096)
	s, a := smallSource(t, e)
	full, _ := save(t, s, Options{})
	e.Write(s, a+4096, []byte("changed"))
	must(t, s.Unmap(a+14*4096, 4096))
	delta, _ := save(t, s, Options{Delta: true})
	if n := len(full) + len(delta); n > 64<<10 {
		t.Fatalf("images of %d bytes: too many to damage at every byte", n)
	}

	empty := e.Space(cow.Options{Orders: cow.Orders()})
	damaged(t, full, func(what string, bad []byte) {
		_, err := Load(bytes.NewReader(bad), empty)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("full image %s: Load says %v, want ErrCorrupt", what, err)
		}
		if len(empty.Regions()) != 0 {
			t.Fatalf("full image %s: a failed Load left regions %v", what, empty.Regions())
		}
	})

	replica := e.Space(cow.Options{Orders: cow.Orders()})
	load(t, full, replica)
	base := unprotectedState(t, e, replica)
	damaged(t, delta, func(what string, bad []byte) {
		_, err := Load(bytes.NewReader(bad), replica)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("delta %s: Load says %v, want ErrCorrupt", what, err)
		}
		if testing.Short() || len(bad) < len(delta) && len(bad)%97 == 0 {
			if got := unprotectedState(t, e, replica); got != base {
				t.Fatalf("delta %s: a failed Load changed the target", what)
			}
		}
	})
	if got := unprotectedState(t, e, replica); got != base {
		t.Fatal("the failed Loads changed the target")
	}
	load(t, delta, replica)
	if got, want := unprotectedState(t, e, replica), unprotectedState(t, e, s); got != want {
		t.Fatal("after every damaged copy failed, the delta itself did not load right")
	}
	e.Check()
}

// TestMismatch: a delta onto anything but exactly the state it follows,
// and a full image into a space that has regions, is ErrMismatch, and
// changes nothing.
func TestMismatch(t *testing.T) {
	e := spacetest.New(t, 64<<20, 4096)
	s, a := smallSource(t, e)
	full, _ := save(t, s, Options{})
	e.Write(s, a, []byte("d1"))
	d1, _ := save(t, s, Options{Delta: true})
	e.Write(s, a, []byte("d2"))
	d2, _ := save(t, s, Options{Delta: true})

	fresh := func() *cow.Space {
		r := e.Space(cow.Options{Orders: cow.Orders()})
		load(t, full, r)
		return r
	}
	cases := []struct {
		name   string
		target func() *cow.Space
		img    []byte
	}{
		{"a full image into a space with regions", func() *cow.Space { return fresh() }, full},
		{"a delta into an empty space", func() *cow.Space { return e.Space(cow.Options{}) }, d1},
		{"a delta onto the wrong base", fresh, d2},
		{"a delta onto a base written since", func() *cow.Space {
			r := fresh()
			e.Write(r, a+5*4096, []byte("local"))
			return r
		}, d1},
		{"a delta onto a base whose pages were dropped since", func() *cow.Space {
			r := fresh()
			must(t, r.Advise(a, 4096, cow.DontNeed))
			return r
		}, d1},
		{"a delta onto a base with a new region", func() *cow.Space {
			r := fresh()
			e.Map(r, 4096, cow.ProtRead)
			return r
		}, d1},
		{"a delta onto a base protected since", func() *cow.Space {
			r := fresh()
			must(t, r.Protect(a, 4096, cow.ProtRead))
			return r
		}, d1},
		{"a delta onto a base advised since", func() *cow.Space {
			r := fresh()
			must(t, r.Advise(a, 4096, cow.DontFork))
			return r
		}, d1},
		{"an image of 4 KiB pages into a space of 16 KiB pages", func() *cow.Space {
			e16 := spacetest.New(t, 16<<20, 16384)
			return e16.Space(cow.Options{})
		}, full},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.target()
			before := state(t, r)
			_, err := Load(bytes.NewReader(c.img), r)
			if !errors.Is(err, ErrMismatch) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load says %v, want ErrMismatch", err)
			}
			if state(t, r) != before {
				t.Fatal("a mismatched Load changed the target")
			}
		})
	}
	// The right chain loads, and a delta applies only once.
	r := fresh()
	load(t, d1, r)
	load(t, d2, r)
	if _, err := Load(bytes.NewReader(d2), r); !errors.Is(err, ErrMismatch) {
		t.Fatalf("the same delta twice: %v, want ErrMismatch", err)
	}
	if got, want := state(t, r), state(t, s); got != want {
		t.Fatal("the chain loaded wrong")
	}
}

// failingWriter fails once it has taken n bytes.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(b)
	return len(b), nil
}

// TestFailedSaveIsNotABase: a Save that fails leaves the tracking as if it
// had not run: with no base yet a delta is ErrNoBase; after a failed delta
// or a failed full Save the next delta carries everything since the last
// Save that succeeded, and loads onto its image.
func TestFailedSaveIsNotABase(t *testing.T) {
	e := spacetest.New(t, 64<<20, 4096)
	s := e.Space(cow.Options{Orders: cow.Orders()})
	a := e.Map(s, 1<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, a, bytes.Repeat([]byte{7}, 1<<20))

	if _, err := Save(io.Discard, s, Options{Delta: true}); !errors.Is(err, ErrNoBase) {
		t.Fatalf("a delta with no Save: %v, want ErrNoBase", err)
	}
	if _, err := Save(&failingWriter{n: 5000}, s, Options{}); !errors.Is(err, errDiskFull) {
		t.Fatalf("a full Save into a failing writer: %v", err)
	}
	if _, err := Save(io.Discard, s, Options{Delta: true}); !errors.Is(err, ErrNoBase) {
		t.Fatalf("a delta after only a failed Save: %v, want ErrNoBase", err)
	}
	full, _ := save(t, s, Options{})
	replica := e.Space(cow.Options{Orders: cow.Orders()})
	load(t, full, replica)

	e.Write(s, a+10*4096, []byte("before the failed delta"))
	must(t, s.Advise(a+20*4096, 4096, cow.DontNeed))
	if _, err := Save(&failingWriter{n: 100}, s, Options{Delta: true}); !errors.Is(err, errDiskFull) {
		t.Fatalf("a delta into a failing writer: %v", err)
	}
	e.Write(s, a+30*4096, []byte("after it"))
	if _, err := Save(&failingWriter{n: 300 << 10}, s, Options{}); !errors.Is(err, errDiskFull) {
		t.Fatalf("a full Save into a failing writer: %v", err)
	}
	d, info := save(t, s, Options{Delta: true})
	if info.Pages != 2 {
		t.Fatalf("the delta after two failed Saves holds %d pages, want the 2 written since the last good one", info.Pages)
	}
	load(t, d, replica)
	if got, want := state(t, replica), state(t, s); got != want {
		t.Fatal("the delta after failed Saves did not bring the replica up to date")
	}
	e.Check()
}

// TestSaveArguments: closed and invalid spaces, and that a Save leaves no
// space of its own alive.
func TestSaveArguments(t *testing.T) {
	e := spacetest.New(t, 16<<20, 4096)
	s := e.Space(cow.Options{})
	e.Write(s, e.Map(s, 64<<10, cow.ProtRead|cow.ProtWrite), []byte("x"))
	save(t, s, Options{})
	e.Check() // every live space passed: a Fork left open would fail it
	if _, err := Save(io.Discard, nil, Options{}); !errors.Is(err, cow.ErrInvalid) {
		t.Fatalf("Save(nil): %v", err)
	}
	if _, err := Save(nil, s, Options{}); !errors.Is(err, cow.ErrInvalid) {
		t.Fatalf("Save to a nil writer: %v", err)
	}
	if _, err := Load(bytes.NewReader(nil), nil); !errors.Is(err, cow.ErrInvalid) {
		t.Fatalf("Load(nil): %v", err)
	}
	s.Close()
	for _, delta := range []bool{false, true} {
		if _, err := Save(io.Discard, s, Options{Delta: delta}); !errors.Is(err, cow.ErrClosed) {
			t.Fatalf("Save of a closed space (delta %v): %v", delta, err)
		}
	}
	img, _ := save(t, e.Space(cow.Options{}), Options{})
	if _, err := Load(bytes.NewReader(img), s); !errors.Is(err, cow.ErrClosed) {
		t.Fatalf("Load into a closed space: %v", err)
	}
}

// TestLoadOutOfMemory: a Load that runs out of memory half-way leaves the
// target unchanged and every page comes back.
func TestLoadOutOfMemory(t *testing.T) {
	big := spacetest.New(t, 64<<20, 4096)
	s := big.Space(cow.Options{})
	big.Write(s, big.Map(s, 16<<20, cow.ProtRead|cow.ProtWrite), bytes.Repeat([]byte{3}, 16<<20))
	img, _ := save(t, s, Options{})

	small := spacetest.New(t, 8<<20, 4096)
	r := small.Space(cow.Options{})
	_, err := Load(bytes.NewReader(img), r)
	if !errors.Is(err, folio.ErrNoMemory) {
		t.Fatalf("Load of 16 MiB into an 8 MiB arena: %v, want ErrNoMemory", err)
	}
	if len(r.Regions()) != 0 {
		t.Fatal("a Load that ran out of memory changed the target")
	}
}

// midwayReader calls f once, after n bytes of the image were read.
type midwayReader struct {
	r    io.Reader
	n    int
	f    func()
	done bool
}

func (m *midwayReader) Read(b []byte) (int, error) {
	if !m.done && m.n <= 0 {
		m.done = true
		m.f()
	}
	if !m.done {
		b = b[:min(len(b), m.n)]
	}
	k, err := m.r.Read(b)
	m.n -= k
	return k, err
}

// TestTargetChangedDuringLoad: the target's state is checked again when
// the Load commits: a write, or a region, that lands in the target while
// the image streams makes the Load fail with ErrMismatch and keeps what
// landed.
func TestTargetChangedDuringLoad(t *testing.T) {
	e := spacetest.New(t, 64<<20, 4096)
	s, a := smallSource(t, e)
	full, _ := save(t, s, Options{})
	e.Write(s, a, []byte("delta"))
	delta, _ := save(t, s, Options{Delta: true})

	empty := e.Space(cow.Options{Orders: cow.Orders()})
	var other cow.Addr
	_, err := Load(&midwayReader{r: bytes.NewReader(full), n: len(full) / 2, f: func() {
		other = e.Map(empty, 4096, cow.ProtRead)
	}}, empty)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("a full image into a space that got a region meanwhile: %v, want ErrMismatch", err)
	}
	if rs := empty.Regions(); len(rs) != 1 || rs[0].Addr != other {
		t.Fatalf("the target's regions are %v: the Load overwrote what landed meanwhile", rs)
	}

	replica := e.Space(cow.Options{Orders: cow.Orders()})
	load(t, full, replica)
	_, err = Load(&midwayReader{r: bytes.NewReader(delta), n: headerSize + 40, f: func() {
		e.Write(replica, a+6*4096, []byte("meanwhile"))
	}}, replica)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("a delta onto a space written meanwhile: %v, want ErrMismatch", err)
	}
	e.Expect(replica, a+6*4096, []byte("meanwhile"))
	e.Expect(replica, a, []byte{0})
}

// TestDamagedLargeRecords: records large enough that Load checks their
// sums on another goroutine are checked all the same: an altered byte
// anywhere in them, or a truncation, is ErrCorrupt and leaves the target
// empty.
func TestDamagedLargeRecords(t *testing.T) {
	e := spacetest.New(t, 64<<20, 4096)
	s := e.Space(cow.Options{}) // large folios: records of whole folios
	a := e.Map(s, 4<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, a, spacetest.Pattern('L', 4<<20, 4096))
	img, _ := save(t, s, Options{})
	target := e.Space(cow.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 64 {
		k := rng.IntN(len(img))
		bad := bytes.Clone(img)
		bad[k] ^= 1 << rng.IntN(8)
		if _, err := Load(bytes.NewReader(bad), target); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d of %d altered: %v, want ErrCorrupt", k, len(img), err)
		}
		if _, err := Load(bytes.NewReader(img[:k]), target); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d: %v, want ErrCorrupt", k, len(img), err)
		}
		if len(target.Regions()) != 0 {
			t.Fatal("a failed Load changed the target")
		}
	}
	load(t, img, target)
	if state(t, target) != state(t, s) {
		t.Fatal("the image itself did not load right")
	}
}
