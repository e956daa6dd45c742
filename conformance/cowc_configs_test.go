package conformance

import (
	"fmt"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// A memConfig is one of cow.c's memory configurations for the anon test
// cases (run_anon_test_case): it maps and fills memory in a fresh space and
// returns the range the test case runs on.
type memConfig struct {
	name  string // the kernel's words after the test case's: "with PTE-mapped THP (64 kB)"
	order int    // the folio order the space allocates (0: base pages)
	setup func(tc *tcase, size int) (cow.Addr, int)
}

// thpKind is how do_run_with_thp leaves the THP before the test runs.
type thpKind int

const (
	thpPMD         thpKind = iota // THP_RUN_PMD: mapped by a huge entry
	thpPTE                        // THP_RUN_PTE: the mprotect trick PTE-maps it
	thpSinglePTE                  // THP_RUN_SINGLE_PTE: DONTNEED all but the first page
	thpPartialMove                // THP_RUN_PARTIAL_MREMAP: the upper half moved away
	thpPartialFork                // THP_RUN_PARTIAL_SHARED: only the first page ever shared
)

// memConfigs lists the configurations in the kernel's order for base pages
// of ps bytes and folio orders up to maxOrder (the PMD order unless capped):
// the base page, then for each THP size ascending the PMD-mapped THP (PMD
// size only), PTE-mapped, single PTE, partially mremap()'ed and partially
// shared. The swapped-out variants have no counterpart: anonfolio has no
// swap. Neither does hugetlb.
func memConfigs(ps, pmdOrder, maxOrder int) []memConfig {
	cfgs := []memConfig{{name: "with base page", setup: runWithBasePage}}
	for o := 1; o <= maxOrder; o++ {
		kb := ps << o >> 10
		add := func(kind thpKind, format string) {
			cfgs = append(cfgs, memConfig{
				name:  fmt.Sprintf(format, kb),
				order: o,
				setup: func(tc *tcase, size int) (cow.Addr, int) { return runWithTHP(tc, size, kind) },
			})
		}
		if o == pmdOrder {
			add(thpPMD, "with THP (%d kB)")
		}
		add(thpPTE, "with PTE-mapped THP (%d kB)")
		add(thpSinglePTE, "with single PTE of THP (%d kB)")
		add(thpPartialMove, "with partially mremap()'ed THP (%d kB)")
		add(thpPartialFork, "with partially shared THP (%d kB)")
	}
	return cfgs
}

// runWithBasePage maps one base page and fills it with 1s (MADV_NOHUGEPAGE
// in the kernel; here the space allocates order 0 only).
func runWithBasePage(tc *tcase, ps int) (cow.Addr, int) {
	mem := tc.e.Map(tc.s, ps, cow.ProtRead|cow.ProtWrite)
	tc.e.Write(tc.s, mem, spacetest.Fill(1, ps))
	return mem, ps
}

// runWithTHP is do_run_with_thp: map size bytes (Map aligns them to the PMD
// size, so to the folio), touch the first byte so that one folio of the
// space's order is populated, check that it was, fill it with 1s, and then
// leave it as kind says.
func runWithTHP(tc *tcase, size int, kind thpKind) (cow.Addr, int) {
	e, s, ps := tc.e, tc.s, tc.ps
	mem := e.Map(s, size, cow.ProtRead|cow.ProtWrite)
	e.Write(s, mem, []byte{1})
	first, ok1 := s.Pagemap(mem)
	last, ok2 := s.Pagemap(mem + cow.Addr(size-ps))
	if !ok1 || !ok2 || last.PFN != first.PFN+uint64(size/ps-1) {
		tc.t.Fatalf("did not get a THP of %d kB populated: first %+v, last %+v", size>>10, first, last)
	}
	e.Write(s, mem, spacetest.Fill(1, size))
	switch kind {
	case thpPMD:
		if !first.Huge {
			tc.t.Fatalf("the %d kB THP is not PMD-mapped: %+v", size>>10, first)
		}
	case thpPTE:
		// Protecting one subpage read-only and back forces a PTE mapping
		// (and unfolds the contpte block around it).
		tc.must(s.Protect(mem+cow.Addr(ps), ps, cow.ProtRead))
		tc.must(s.Protect(mem+cow.Addr(ps), ps, cow.ProtRead|cow.ProtWrite))
		if m, _ := s.Pagemap(mem); m.Huge {
			tc.t.Fatalf("the THP is still PMD-mapped after the mprotect trick")
		}
	case thpSinglePTE:
		tc.must(s.Advise(mem+cow.Addr(ps), size-ps, cow.DontNeed))
		size = ps
	case thpPartialMove:
		// mremap(MREMAP_MAYMOVE|MREMAP_FIXED) the upper half onto a
		// scratch mapping; the test runs on the lower half.
		half := size / 2
		tmp := e.Map(s, half, cow.ProtRead|cow.ProtWrite)
		tc.must(s.Remap(mem+cow.Addr(half), half, tmp))
		size = half
	case thpPartialFork:
		// Only the first page goes through a fork (and back): it is COW-
		// shared once and loses AnonExclusive; the rest never were.
		rest := size - ps
		tc.must(s.Advise(mem+cow.Addr(ps), rest, cow.DontFork))
		c, err := s.Fork()
		tc.must(err)
		tc.must(c.Close())
		tc.must(s.Advise(mem+cow.Addr(ps), rest, cow.DoFork))
	}
	e.Check()
	return mem, size
}
