package conformance

import (
	"bytes"
	"errors"
	"os"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/pin"
)

// A testCase is one entry of cow.c's anon_test_cases or
// non_anon_test_cases: a description (the kernel's, exactly) and the test.
type testCase struct {
	desc string
	fn   func(tc *tcase, mem cow.Addr, size int)
}

// anonTestCases is cow.c's anon_test_cases[], in its order. io_uring's
// fixed buffer (io_uring_register_buffers: FOLL_WRITE|FOLL_PIN|
// FOLL_LONGTERM) is a longterm R/W pin.Pin, and vmsplice() (a R/O
// FOLL_GET held by the pipe) is pin.Get; the gup_test ioctls are R/O
// longterm pin.Pin, SlowOnly for "GUP" and the default for "GUP-fast".
var anonTestCases = []testCase{
	{"Basic COW after fork()", func(tc *tcase, mem cow.Addr, size int) { tc.cowInParent(mem, size, false) }},
	{"Basic COW after fork() with mprotect() optimization", func(tc *tcase, mem cow.Addr, size int) { tc.cowInParent(mem, size, true) }},
	{"vmsplice() + unmap in child", func(tc *tcase, mem cow.Addr, size int) { tc.vmspliceInChild(mem, size, false) }},
	{"vmsplice() + unmap in child with mprotect() optimization", func(tc *tcase, mem cow.Addr, size int) { tc.vmspliceInChild(mem, size, true) }},
	{"vmsplice() before fork(), unmap in parent after fork()", func(tc *tcase, mem cow.Addr, size int) { tc.vmspliceInParent(mem, size, true) }},
	{"vmsplice() + unmap in parent after fork()", func(tc *tcase, mem cow.Addr, size int) { tc.vmspliceInParent(mem, size, false) }},
	{"R/O-mapping a page registered as iouring fixed buffer", func(tc *tcase, mem cow.Addr, size int) { tc.iouring(mem, size, false) }},
	{"fork() with an iouring fixed buffer", func(tc *tcase, mem cow.Addr, size int) { tc.iouring(mem, size, true) }},
	{"R/O GUP pin on R/O-mapped shared page", func(tc *tcase, mem cow.Addr, size int) { tc.roPin(mem, size, roPinShared, false) }},
	{"R/O GUP-fast pin on R/O-mapped shared page", func(tc *tcase, mem cow.Addr, size int) { tc.roPin(mem, size, roPinShared, true) }},
	{"R/O GUP pin on R/O-mapped previously-shared page", func(tc *tcase, mem cow.Addr, size int) { tc.roPin(mem, size, roPinPreviouslyShared, false) }},
	{"R/O GUP-fast pin on R/O-mapped previously-shared page", func(tc *tcase, mem cow.Addr, size int) { tc.roPin(mem, size, roPinPreviouslyShared, true) }},
	{"R/O GUP pin on R/O-mapped exclusive page", func(tc *tcase, mem cow.Addr, size int) { tc.roPin(mem, size, roPinROExclusive, false) }},
	{"R/O GUP-fast pin on R/O-mapped exclusive page", func(tc *tcase, mem cow.Addr, size int) { tc.roPin(mem, size, roPinROExclusive, true) }},
}

// nonAnonTestCases is cow.c's non_anon_test_cases[]: mem and smem are two
// private mappings of the same (shared zero) page, so size is one page.
var nonAnonTestCases = []struct {
	desc string
	fn   func(tc *tcase, mem, smem cow.Addr, size int)
}{
	{"Basic COW", func(tc *tcase, mem, smem cow.Addr, size int) { tc.cow(mem, smem, size) }},
	{"R/O longterm GUP pin", func(tc *tcase, mem, _ cow.Addr, size int) { tc.roPin(mem, size, roPinNone, false) }},
	{"R/O longterm GUP-fast pin", func(tc *tcase, mem, _ cow.Addr, size int) { tc.roPin(mem, size, roPinNone, true) }},
}

// cowInParent is do_test_cow_in_parent with child_memcmp_fn: the child
// takes its snapshot of mem, the parent (after the mprotect() round trip
// that may map exclusive pages writable without a fault) overwrites mem,
// and the child must still read its snapshot: "No leak from parent into
// child".
func (tc *tcase) cowInParent(mem cow.Addr, size int, doMprotect bool) {
	e, s := tc.e, tc.s
	orig := e.Read(s, mem, size)
	child := tc.fork()
	old := e.Read(child, mem, size)
	if !bytes.Equal(old, orig) {
		tc.t.Fatalf("the child reads %q… at fork, want the parent's %q…", spacetest.Head(old), spacetest.Head(orig))
	}
	if doMprotect {
		tc.mprotectRoundTrip(mem, size)
	}
	e.Write(s, mem, spacetest.Fill(0xff, size))
	e.Check()
	if got := e.Read(child, mem, size); !bytes.Equal(got, old) {
		tc.t.Fatalf("Leak from parent into child: the child reads %q…", spacetest.Head(got))
	}
	tc.must(child.Close())
}

// vmspliceInChild is do_test_cow_in_parent with child_vmsplice_memcmp_fn
// (CVE-2020-29374): the child takes R/O references on mem (the pipe's) and
// unmaps it; the parent writes; what the child's references read must still
// be its snapshot.
func (tc *tcase) vmspliceInChild(mem cow.Addr, size int, doMprotect bool) {
	e, s := tc.e, tc.s
	child := tc.fork()
	old := e.Read(child, mem, size)
	pipe := tc.get(child, mem, size)
	defer pipe.Release()
	tc.must(child.Unmap(mem, size))
	if doMprotect {
		tc.mprotectRoundTrip(mem, size)
	}
	e.Write(s, mem, spacetest.Fill(0xff, size))
	e.Check()
	if got := spacetest.Join(pipe.Bytes()); !bytes.Equal(got, old) {
		tc.t.Fatalf("Leak from parent into child: the pipe reads %q…, want %q…", spacetest.Head(got), spacetest.Head(old))
	}
	tc.must(child.Close())
}

// vmspliceInParent is do_test_vmsplice_in_parent: the parent takes R/O
// references on mem before or after the fork, unmaps mem, and the child
// writes it; the references must still read what the parent had: "No leak
// from child into parent".
func (tc *tcase) vmspliceInParent(mem cow.Addr, size int, beforeFork bool) {
	e, s := tc.e, tc.s
	old := e.Read(s, mem, size)
	var pipe *pin.Pages
	if beforeFork {
		pipe = tc.get(s, mem, size)
	}
	child := tc.fork()
	if !beforeFork {
		pipe = tc.get(s, mem, size)
	}
	defer pipe.Release()
	tc.must(s.Unmap(mem, size))
	e.Write(child, mem, spacetest.Fill(0xff, size))
	e.Check()
	tc.must(child.Close())
	if got := spacetest.Join(pipe.Bytes()); !bytes.Equal(got, old) {
		tc.t.Fatalf("Leak from child into parent: the pipe reads %q…, want %q…", spacetest.Head(got), spacetest.Head(old))
	}
}

// iouring is do_test_iouring: a longterm R/W pin (the registered fixed
// buffer), then either the PTEs are made read-only while the pages stay
// exclusive (mprotect(R), the soft-dirty reset, mprotect(RW)) or the process
// forks and the child stays alive. The parent overwrites mem, the pinned
// buffer is written to a file (write_fixed) and read back; it must equal
// mem: "Longterm R/W pin is reliable".
func (tc *tcase) iouring(mem cow.Addr, size int, useFork bool) {
	e, s := tc.e, tc.s
	orig := e.Read(s, mem, size)
	buf, err := pin.Pin(s, mem, size, pin.Write|pin.Longterm)
	tc.must(err)
	defer buf.Release()
	var child *cow.Space
	if useFork {
		child = tc.fork()
	} else {
		tc.roExclusive(mem, size)
		if m, _ := s.Pagemap(mem); m.Writable || !m.Exclusive {
			tc.t.Fatalf("the setup did not leave the pinned page R/O-mapped and exclusive: %+v", m)
		}
	}
	before := s.Stats()
	e.Write(s, mem, spacetest.Fill(0xff, size))
	if after := s.Stats(); after.WPCopy != before.WPCopy {
		// An exclusive page is always reused, never copied: a copy would
		// take the memory away from the pin.
		tc.t.Fatalf("the write copied %d pages away from the pin", after.WPCopy-before.WPCopy)
	}
	e.Check()
	got := tc.writeFixed(buf)
	if want := e.Read(s, mem, size); !bytes.Equal(got, want) {
		tc.t.Fatalf("Longterm R/W pin is not reliable: the file holds %q…, mem %q…", spacetest.Head(got), spacetest.Head(want))
	}
	if useFork {
		// The pinned pages were not shared: the child got copies.
		e.Expect(child, mem, orig)
		tc.must(child.Close())
	}
}

// writeFixed is io_uring's write_fixed of the registered buffer to a
// tmpfile, then a pread of it back.
func (tc *tcase) writeFixed(buf *pin.Pages) []byte {
	f, err := os.CreateTemp(tc.t.TempDir(), "iouring")
	tc.must(err)
	defer f.Close()
	var n int64
	for _, b := range buf.Bytes() {
		k, err := f.WriteAt(b, n)
		tc.must(err)
		n += int64(k)
	}
	got := make([]byte, n)
	_, err = f.ReadAt(got, 0)
	tc.must(err)
	return got
}

// roPinTest is do_test_ro_pin's setup.
type roPinTest int

const (
	roPinNone             roPinTest = iota // RO_PIN_TEST
	roPinShared                            // RO_PIN_TEST_SHARED: a child alive during the test
	roPinPreviouslyShared                  // RO_PIN_TEST_PREVIOUSLY_SHARED: the child exited first
	roPinROExclusive                       // RO_PIN_TEST_RO_EXCLUSIVE: R/O PTEs on exclusive pages
)

// roPin is do_test_ro_pin: after the setup, a longterm R/O pin
// (PIN_LONGTERM_TEST_START), the space overwrites mem, and what the pin
// reads (PIN_LONGTERM_TEST_READ) must equal mem: "Longterm R/O pin is
// reliable". fast is pin_user_pages_fast, else pin_user_pages.
func (tc *tcase) roPin(mem cow.Addr, size int, test roPinTest, fast bool) {
	e, s := tc.e, tc.s
	var child *cow.Space
	switch test {
	case roPinShared:
		child = tc.fork()
	case roPinPreviouslyShared:
		tc.must(tc.fork().Close())
	case roPinROExclusive:
		tc.roExclusive(mem, size)
	}
	orig := e.Read(s, mem, size)
	flags := pin.Longterm
	switch {
	case !fast:
		flags |= pin.SlowOnly
	case test == roPinShared:
		// GUP-fast never unshares: it must leave a shared page to the
		// slow path, holding nothing.
		if p, err := pin.Pin(s, mem, size, flags|pin.FastOnly); !errors.Is(err, pin.ErrFastFailed) {
			tc.t.Fatalf("GUP-fast on a shared page: %v, %v; want ErrFastFailed", p, err)
		}
	case test == roPinROExclusive && tc.allExclusive(mem, size):
		// An exclusive page needs no unshare: GUP-fast takes it. (With the
		// partially shared THP the first page went through a fork and is
		// not exclusive: the slow path unshares it.)
		flags |= pin.FastOnly
	}
	before := s.Stats()
	first, _ := s.Pagemap(mem)
	p, err := pin.Pin(s, mem, size, flags)
	tc.must(err)
	defer p.Release()
	after := s.Stats()
	switch test {
	case roPinROExclusive:
		// Exclusive pages are pinned as they are.
		if after.WPCopy != before.WPCopy {
			tc.t.Fatalf("the pin of exclusive pages copied %d of them", after.WPCopy-before.WPCopy)
		}
	case roPinPreviouslyShared:
		// The first page is only this space's: its unshare reuses it. (The
		// next pages of a PTE-mapped large folio are copied, as in the
		// kernel: the first one's pin is a reference the mappings do not
		// account for, so mapcount != refcount.)
		if m, _ := s.Pagemap(mem); m.PFN != first.PFN {
			tc.t.Fatalf("the unshare of a page no longer shared copied it: pfn %#x → %#x", first.PFN, m.PFN)
		}
	}
	e.Write(s, mem, spacetest.Fill(0xff, size))
	e.Check()
	got := spacetest.Join(p.Bytes())
	if want := e.Read(s, mem, size); !bytes.Equal(got, want) {
		tc.t.Fatalf("Longterm R/O pin is not reliable: the pin reads %q…, mem %q…", spacetest.Head(got), spacetest.Head(want))
	}
	if child != nil {
		e.Expect(child, mem, orig)
		tc.must(child.Close())
	}
}

// cow is test_cow: writing mem must leave smem, another private mapping of
// the same page, unchanged: "Other mapping not modified".
func (tc *tcase) cow(mem, smem cow.Addr, size int) {
	e, s := tc.e, tc.s
	old := e.Read(s, smem, size)
	e.Write(s, mem, spacetest.Fill(0xff, size))
	e.Check()
	if got := e.Read(s, smem, size); !bytes.Equal(got, old) {
		tc.t.Fatalf("Other mapping modified: reads %q…", spacetest.Head(got))
	}
}

// roExclusive maps exclusive pages read-only in a writable region
// (RO_PIN_TEST_RO_EXCLUSIVE): the kernel does mprotect(PROT_READ), resets
// soft-dirty so that the next mprotect(PROT_READ|PROT_WRITE) cannot map the
// pages writable again, and does it. anonfolio keeps no soft-dirty bit, so
// the mprotect round trip comes first and WriteProtect (the reset's
// write-protect) last: the same state, PTEs read-only and pages exclusive.
func (tc *tcase) roExclusive(mem cow.Addr, size int) {
	tc.mprotectRoundTrip(mem, size)
	tc.must(tc.s.WriteProtect(mem, size))
}

// allExclusive reports whether every page of [mem, mem+size) is mapped
// AnonExclusive.
func (tc *tcase) allExclusive(mem cow.Addr, size int) bool {
	for va := mem; va < mem+cow.Addr(size); va += cow.Addr(tc.ps) {
		if m, ok := tc.s.Pagemap(va); !ok || !m.Exclusive {
			return false
		}
	}
	return true
}

// mprotectRoundTrip is the "mprotect() optimization": mprotect(PROT_READ)
// then mprotect(PROT_READ|PROT_WRITE), which maps exclusive pages writable
// without a fault and must leave shared ones read-only.
func (tc *tcase) mprotectRoundTrip(mem cow.Addr, size int) {
	tc.must(tc.s.Protect(mem, size, cow.ProtRead))
	tc.must(tc.s.Protect(mem, size, cow.ProtRead|cow.ProtWrite))
}

// anonTHPTestCases is cow.c's anon_thp_test_cases[]: each runs on a
// PMD-mapped THP, PTE-maps it and collapses it again (MADV_COLLAPSE, here
// Advise(Collapse)) before or after a fork, with all, the lower or the upper
// half of it shared with the child.
var anonTHPTestCases = []testCase{
	{"Basic COW after fork() when collapsing before fork()", func(tc *tcase, mem cow.Addr, size int) { tc.thpCollapse(mem, size, collapseUnshared) }},
	{"Basic COW after fork() when collapsing after fork() (fully shared)", func(tc *tcase, mem cow.Addr, size int) { tc.thpCollapse(mem, size, collapseFullyShared) }},
	{"Basic COW after fork() when collapsing after fork() (lower shared)", func(tc *tcase, mem cow.Addr, size int) { tc.thpCollapse(mem, size, collapseLowerShared) }},
	{"Basic COW after fork() when collapsing after fork() (upper shared)", func(tc *tcase, mem cow.Addr, size int) { tc.thpCollapse(mem, size, collapseUpperShared) }},
}

// anonTHPCollapseTest is test_anon_thp_collapse's variant.
type anonTHPCollapseTest int

const (
	collapseUnshared    anonTHPCollapseTest = iota // ANON_THP_COLLAPSE_UNSHARED
	collapseFullyShared                            // ANON_THP_COLLAPSE_FULLY_SHARED
	collapseLowerShared                            // ANON_THP_COLLAPSE_LOWER_SHARED
	collapseUpperShared                            // ANON_THP_COLLAPSE_UPPER_SHARED
)

// thpCollapse is do_test_anon_thp_collapse: the child takes its snapshot of
// the shared part, the parent collapses (before the fork, or after it with
// DONTFORK undone so that the regions merge), overwrites mem, and the child
// must still read its snapshot: exclusivity carried right through the
// collapse.
func (tc *tcase) thpCollapse(mem cow.Addr, size int, test anonTHPCollapseTest) {
	e, s, ps := tc.e, tc.s, tc.ps
	half := cow.Addr(size / 2)
	tc.must(s.Protect(mem+cow.Addr(ps), ps, cow.ProtRead)) // PTE-map the THP
	tc.must(s.Protect(mem+cow.Addr(ps), ps, cow.ProtRead|cow.ProtWrite))
	childMem, childSize := mem, size
	switch test {
	case collapseUnshared:
		tc.collapse(mem, size)
	case collapseLowerShared:
		tc.must(s.Advise(mem+half, size/2, cow.DontFork))
		childSize = size / 2
	case collapseUpperShared:
		tc.must(s.Advise(mem, size/2, cow.DontFork))
		childMem, childSize = mem+half, size/2
	}
	child := tc.fork()
	old := e.Read(child, childMem, childSize)
	switch test {
	case collapseLowerShared, collapseUpperShared:
		tc.must(s.Advise(mem, size, cow.DoFork))
		fallthrough
	case collapseFullyShared:
		tc.collapse(mem, size)
	}
	e.Write(s, mem, spacetest.Fill(0xff, size))
	e.Check()
	if got := e.Read(child, childMem, childSize); !bytes.Equal(got, old) {
		tc.t.Fatalf("Leak from parent into child: the child reads %q…", spacetest.Head(got))
	}
	tc.must(child.Close())
}

// collapse is MADV_COLLAPSE of [mem, mem+size), which must leave it
// PMD-mapped (the kernel skips the test if the collapse fails; here it
// cannot fail).
func (tc *tcase) collapse(mem cow.Addr, size int) {
	tc.must(tc.s.Advise(mem, size, cow.Collapse))
	if m, _ := tc.s.Pagemap(mem); !m.Huge {
		tc.t.Fatalf("MADV_COLLAPSE left %+v", m)
	}
}
