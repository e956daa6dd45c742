package snapshot

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/pin"
)

// The written mark's rules, case by case in the manner of the kernel's
// cow.c: after a full Save, one action; the next delta must hold exactly
// the pages the action wrote (order-0 folios: exact), and the replica that
// loads it must equal the source.

// imagePages returns the addresses of the pages an image stores.
func imagePages(t *testing.T, img []byte) []cow.Addr {
	t.Helper()
	d := newDecoder(bytes.NewReader(img))
	h, err := d.header()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.regionsRecord(); err != nil {
		t.Fatal(err)
	}
	if h.delta {
		if _, err := d.resetsRecord(); err != nil {
			t.Fatal(err)
		}
	}
	var out []cow.Addr
	page := make([]byte, h.pageSize)
	for {
		rh, err := d.next(recPages)
		if err != nil {
			t.Fatal(err)
		}
		if rh.typ == recEnd {
			return out
		}
		for k := range uint64(rh.n) {
			if err := d.into(page); err != nil {
				t.Fatal(err)
			}
			out = append(out, cow.Addr(rh.addr+k*uint64(h.pageSize)))
		}
		if err := d.check(); err != nil {
			t.Fatal(err)
		}
	}
}

// pagesAt returns the addresses of pages k of the region at a.
func pagesAt(a cow.Addr, ks ...int) []cow.Addr {
	out := []cow.Addr{}
	for _, k := range ks {
		out = append(out, a+cow.Addr(k*4096))
	}
	return out
}

// writtenFixture is a source with a 2 MiB region at a (a whole page-table
// leaf: Fork shares it), pages 0..31 written, a full image loaded into a
// replica.
type writtenFixture struct {
	e          *spacetest.Env
	s, replica *cow.Space
	a          cow.Addr
}

func newWrittenFixture(t *testing.T) *writtenFixture {
	e := spacetest.New(t, 64<<20, 4096)
	f := &writtenFixture{e: e, s: e.Space(cow.Options{Orders: cow.Orders()})}
	f.a = e.Map(f.s, 512*4096, cow.ProtRead|cow.ProtWrite)
	e.Write(f.s, f.a, spacetest.Pattern('0', 32*4096, 4096))
	full, _ := save(t, f.s, Options{})
	f.replica = e.Space(cow.Options{Orders: cow.Orders()})
	load(t, full, f.replica)
	return f
}

// delta saves a delta, checks it holds want, loads it into the replica
// and checks the replica equals the source.
func (f *writtenFixture) delta(t *testing.T, want []cow.Addr) {
	t.Helper()
	img, info := save(t, f.s, Options{Delta: true})
	got := imagePages(t, img)
	if !slices.Equal(got, want) || info.Pages != int64(len(want)) {
		t.Fatalf("the delta holds pages %#x (Info.Pages %d), want %#x", got, info.Pages, want)
	}
	load(t, img, f.replica)
	if g, w := unprotectedState(t, f.e, f.replica), unprotectedState(t, f.e, f.s); g != w {
		t.Fatal("the replica differs from the source after the delta")
	}
}

func TestWrittenMarks(t *testing.T) {
	cases := []struct {
		name string
		act  func(t *testing.T, f *writtenFixture) []cow.Addr // returns the pages the delta must hold
	}{
		{"nothing", func(t *testing.T, f *writtenFixture) []cow.Addr { return nil }},
		{"WriteAt, a new page (fault)", func(t *testing.T, f *writtenFixture) []cow.Addr {
			f.e.Write(f.s, f.a+40*4096+7, []byte("new"))
			return pagesAt(f.a, 40)
		}},
		{"WriteAt, a saved page (reuse)", func(t *testing.T, f *writtenFixture) []cow.Addr {
			f.e.Write(f.s, f.a+3*4096, []byte("reuse"))
			return pagesAt(f.a, 3)
		}},
		{"WriteAt, a page a Fork shares (copy)", func(t *testing.T, f *writtenFixture) []cow.Addr {
			c := f.e.Fork(f.s)
			defer c.Close()
			f.e.Write(f.s, f.a+4*4096, []byte("copy"))
			f.e.Write(c, f.a+5*4096, []byte("the child's"))
			return pagesAt(f.a, 4)
		}},
		{"WriteAt across pages, twice", func(t *testing.T, f *writtenFixture) []cow.Addr {
			f.e.Write(f.s, f.a+6*4096-3, []byte("straddles"))
			f.e.Write(f.s, f.a+6*4096, []byte("again"))
			return pagesAt(f.a, 5, 6)
		}},
		{"read of an unwritten page (zero page)", func(t *testing.T, f *writtenFixture) []cow.Addr {
			f.e.Read(f.s, f.a+50*4096, 10)
			return nil
		}},
		{"Accessor stores, lockless after the first", func(t *testing.T, f *writtenFixture) []cow.Addr {
			acc := f.s.NewAccessor()
			defer acc.Close()
			must(t, acc.StoreUint64(f.a+7*4096, 1))
			must(t, acc.StoreUint64(f.a+7*4096+8, 2))
			if _, err := acc.AddUint64(f.a+8*4096, 3); err != nil {
				t.Fatal(err)
			}
			if _, err := acc.CompareAndSwapUint64(f.a+9*4096, 0, 4); err != nil {
				t.Fatal(err)
			}
			return pagesAt(f.a, 7, 8, 9)
		}},
		{"R/W pin, written through and released", func(t *testing.T, f *writtenFixture) []cow.Addr {
			p, err := pin.Pin(f.s, f.a+10*4096, 4096, pin.Write)
			must(t, err)
			copy(p.Bytes()[0], "through the pin")
			p.Release()
			return pagesAt(f.a, 10)
		}},
		{"R/O pin of a saved page", func(t *testing.T, f *writtenFixture) []cow.Addr {
			p, err := pin.Pin(f.s, f.a+11*4096, 4096, 0)
			must(t, err)
			p.Release()
			return nil
		}},
		{"R/O Get", func(t *testing.T, f *writtenFixture) []cow.Addr {
			p, err := pin.Get(f.s, f.a+12*4096, 4096, 0)
			must(t, err)
			p.Release()
			return nil
		}},
		{"R/W Get", func(t *testing.T, f *writtenFixture) []cow.Addr {
			p, err := pin.Get(f.s, f.a+13*4096, 4096, pin.Write)
			must(t, err)
			copy(p.Bytes()[0], "through the Get")
			p.Release()
			return pagesAt(f.a, 13)
		}},
		{"Fork, and the child's writes", func(t *testing.T, f *writtenFixture) []cow.Addr {
			c := f.e.Fork(f.s)
			f.e.Write(c, f.a+14*4096, []byte("child"))
			c.Close()
			return nil
		}},
		{"Remap: the moved pages, at their new place", func(t *testing.T, f *writtenFixture) []cow.Addr {
			must(t, f.s.Remap(f.a+16*4096, 4*4096, f.a+56*4096))
			return pagesAt(f.a, 56, 57, 58, 59)
		}},
		{"DontNeed: no page, the range reads zero", func(t *testing.T, f *writtenFixture) []cow.Addr {
			must(t, f.s.Advise(f.a+20*4096, 2*4096, cow.DontNeed))
			return nil
		}},
		{"MapFixed over data, then a write", func(t *testing.T, f *writtenFixture) []cow.Addr {
			must(t, f.s.MapFixed(f.a+22*4096, 2*4096, cow.ProtRead|cow.ProtWrite))
			f.e.Write(f.s, f.a+23*4096, []byte("fresh"))
			return pagesAt(f.a, 23)
		}},
		{"WriteProtect", func(t *testing.T, f *writtenFixture) []cow.Addr {
			must(t, f.s.WriteProtect(f.a, 512*4096))
			return nil
		}},
		{"Protect read-only and back: no mark, and the next store faults", func(t *testing.T, f *writtenFixture) []cow.Addr {
			f.e.Write(f.s, f.a+24*4096, []byte("written before"))
			f.delta(t, pagesAt(f.a, 24)) // unmarked and write-protected now
			must(t, f.s.Protect(f.a, 512*4096, cow.ProtRead))
			must(t, f.s.Protect(f.a, 512*4096, cow.ProtRead|cow.ProtWrite))
			if m, _ := f.s.Pagemap(f.a + 24*4096); m.Writable || m.Written {
				t.Fatalf("after Protect(RW) an unmarked page is %+v: a lockless store would not be seen", m)
			}
			acc := f.s.NewAccessor()
			defer acc.Close()
			must(t, acc.StoreUint64(f.a+24*4096, 5))
			must(t, acc.StoreUint64(f.a+24*4096+8, 6)) // lockless
			return pagesAt(f.a, 24)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newWrittenFixture(t)
			want := c.act(t, f)
			f.delta(t, want)
		})
	}
}

// TestWrittenWhilePinned: a R/W pin counts as written for as long as it is
// held (it may write at any time, with no fault to see), even after
// Protect made its page read-only; a R/O pin does not make a page written.
func TestWrittenWhilePinned(t *testing.T) {
	f := newWrittenFixture(t)
	rw, err := pin.Pin(f.s, f.a+2*4096, 4096, pin.Write)
	must(t, err)
	ro, err := pin.Pin(f.s, f.a+3*4096, 4096, 0)
	must(t, err)
	f.delta(t, pagesAt(f.a, 2))
	copy(rw.Bytes()[0], "while held")
	f.delta(t, pagesAt(f.a, 2))
	must(t, f.s.Protect(f.a, 512*4096, cow.ProtRead))
	copy(rw.Bytes()[0][100:], "through a read-only mapping")
	f.delta(t, pagesAt(f.a, 2))
	rw.Release()
	ro.Release()
	f.delta(t, pagesAt(f.a, 2)) // the last mark the pin kept
	f.delta(t, nil)
}

// TestUserForksDoNotDisturb: Forks of the source between Saves (and their
// own Saves) leave its tracking alone, and its Saves leave theirs: a leaf
// the source shares with a child keeps the marks the child needs. A
// child's delta follows the base it inherited.
func TestUserForksDoNotDisturb(t *testing.T) {
	f := newWrittenFixture(t)
	branch := f.e.Space(cow.Options{Orders: cow.Orders()})
	must(t, branch.ResetTo(f.replica)) // a second replica, at the same base
	b := f.e.Map(f.s, 512*4096, cow.ProtRead|cow.ProtWrite)
	f.e.Write(f.s, f.a+4096, []byte("written, then forked"))
	c := f.e.Fork(f.s) // shares a's leaf, marks and all
	f.e.Write(f.s, b, []byte("the source's, after the fork"))
	f.e.Write(c, b+4096, []byte("the child's"))
	f.delta(t, []cow.Addr{f.a + 4096, b}) // clears the source's marks, not the child's

	img, _ := save(t, c, Options{Delta: true})
	if got, want := imagePages(t, img), []cow.Addr{f.a + 4096, b + 4096}; !slices.Equal(got, want) {
		t.Fatalf("the child's delta holds %#x, want %#x", got, want)
	}
	load(t, img, branch)
	if state(t, branch) != state(t, c) {
		t.Fatal("the child's delta did not load right")
	}
	f.delta(t, nil)
}

// TestProtectUpgradeNeedsMark: a page that is exclusive and not marked
// written (a source's page after a Save, a replica's after a Load) stays
// read-only when Protect makes its region writable again, so that the
// next store, lockless or not, faults and marks it (can_change_pte_writable
// under soft-dirty tracking).
func TestProtectUpgradeNeedsMark(t *testing.T) {
	f := newWrittenFixture(t)
	for _, sp := range []*cow.Space{f.s, f.replica} {
		m, _ := sp.Pagemap(f.a + 5*4096)
		if !m.Exclusive || m.Written || m.Writable {
			t.Fatalf("setup: the page is %+v, want exclusive, unmarked, read-only", m)
		}
		must(t, sp.Protect(f.a, 512*4096, cow.ProtRead))
		must(t, sp.Protect(f.a, 512*4096, cow.ProtRead|cow.ProtWrite))
		if m, _ := sp.Pagemap(f.a + 5*4096); m.Writable || m.Written {
			t.Fatalf("after Protect(RW) the unmarked page is %+v: a lockless store would not be seen", m)
		}
	}
	acc := f.s.NewAccessor()
	defer acc.Close()
	must(t, acc.StoreUint64(f.a+5*4096, 5))
	must(t, acc.StoreUint64(f.a+5*4096+8, 6)) // lockless
	f.delta(t, pagesAt(f.a, 5))

	acc2 := f.replica.NewAccessor()
	defer acc2.Close()
	must(t, acc2.StoreUint64(f.a+6*4096, 7))
	img, _ := save(t, f.replica, Options{Delta: true})
	if got := imagePages(t, img); !slices.Equal(got, pagesAt(f.a, 6)) {
		t.Fatalf("the replica's own delta holds %#x, want its store's page", got)
	}
}

// TestForkAdviceIsAReset: a Fork's child inherits its parent's base, but
// not the contents of its WipeOnFork regions (empty) or DontFork ones
// (absent): the child's delta must reset them, or a replica at the base
// keeps the parent's data there. (Found by the differential test.)
func TestForkAdviceIsAReset(t *testing.T) {
	f := newWrittenFixture(t)
	must(t, f.s.Advise(f.a, 4*4096, cow.WipeOnFork))
	must(t, f.s.Advise(f.a+8*4096, 4*4096, cow.DontFork))
	f.delta(t, nil)
	c := f.e.Fork(f.s)
	img, _ := save(t, c, Options{Delta: true})
	load(t, img, f.replica)
	if g, w := unprotectedState(t, f.e, f.replica), unprotectedState(t, f.e, c); g != w {
		t.Fatal("the child's delta left the parent's data in its wiped region")
	}
}

// blockingWriter blocks its first Write until release is closed.
type blockingWriter struct {
	started, release chan struct{}
	once             bool
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	if !w.once {
		w.once = true
		close(w.started)
		<-w.release
	}
	return len(b), nil
}

// TestInheritDuringSave: a Fork of a space, or a ResetTo to it, while a
// Save of it streams has no base: the space's marks were cleared for an
// image that is not its base yet, and may never be (the Save may fail).
func TestInheritDuringSave(t *testing.T) {
	f := newWrittenFixture(t)
	f.e.Write(f.s, f.a, []byte("written before the Save"))
	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error)
	go func() {
		_, err := Save(w, f.s, Options{Delta: true})
		done <- err
	}()
	<-w.started
	c := f.e.Fork(f.s)
	r := f.e.Space(cow.Options{Orders: cow.Orders()})
	must(t, r.ResetTo(f.s))
	close(w.release)
	must(t, <-done)
	for _, sp := range []*cow.Space{c, r} {
		if _, err := Save(io.Discard, sp, Options{Delta: true}); !errors.Is(err, ErrNoBase) {
			t.Fatalf("a delta of a space made while a Save of its source streamed: %v, want ErrNoBase", err)
		}
	}
	if _, err := Save(io.Discard, f.s, Options{Delta: true}); err != nil {
		t.Fatalf("the source's own next delta: %v", err) // the Save committed: it has a base
	}
}
