package conformance

import (
	"flag"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/pin"
)

// cowcFull runs the cow.c matrix with every folio order up to the PMD order
// at every page size, 512 MiB folios at 64 KiB pages.
var cowcFull = flag.Bool("cowc.full", false, "run the cow.c matrix with every folio order up to the PMD order at every page size")

// cowcMaxFolio is the largest folio the matrix runs with by default: every
// order, the PMD order included, at 4 and 16 KiB pages (2 and 32 MiB), and up
// to 32 MiB at 64 KiB pages, whose PMD folio is 512 MiB. Under emulation,
// where memory is an order of magnitude slower, 2 MiB.
var cowcMaxFolio = func() int {
	if emulated {
		return 2 << 20
	}
	return 32 << 20
}()

// cowcTotals counts the matrix's test lines, for the kselftest-style
// summary TestMain prints.
var cowcTotals struct{ pass, fail atomic.Int64 }

// tcase is one test line: a fresh arena and space, set up by a memory
// configuration, then one test case.
type tcase struct {
	t  *testing.T
	e  *spacetest.Env
	s  *cow.Space
	ps int
}

func (tc *tcase) must(err error) {
	tc.t.Helper()
	if err != nil {
		tc.t.Fatal(err)
	}
}

// fork forks the space (the test's fork(); the child is a Space).
func (tc *tcase) fork() *cow.Space { return tc.e.Fork(tc.s) }

// get is vmsplice(): R/O references the pipe holds.
func (tc *tcase) get(s *cow.Space, mem cow.Addr, size int) *pin.Pages {
	tc.t.Helper()
	p, err := pin.Get(s, mem, size, 0)
	tc.must(err)
	return p
}

// line runs one test line as a subtest named like the kernel's, and counts it.
func line(t *testing.T, name string, ps, order int, run func(tc *tcase)) {
	t.Run(name, func(t *testing.T) {
		t.Cleanup(func() {
			if t.Failed() {
				cowcTotals.fail.Add(1)
			} else {
				cowcTotals.pass.Add(1)
			}
		})
		size := ps << order
		// Room for the mapping, a moved half, the copies a COW or a
		// pinned fork makes, and the child's: four times the folio.
		e := spacetest.New(t, int64(4*size+(4<<20)), ps)
		orders := cow.Orders(order)
		tc := &tcase{t: t, e: e, ps: ps}
		tc.s = e.Space(cow.Options{Orders: orders})
		run(tc)
	})
}

// TestCowC is tools/testing/selftests/mm/cow.c: every anon test case with
// every memory configuration, then the non-anon test cases on the shared
// zero page, at base pages of 4, 16 and 64 KiB.
func TestCowC(t *testing.T) {
	sizes := cowcPageSizes
	if testing.Short() {
		// The matrix is sequential: the race detector finds nothing in it
		// that the full run does not, and its heap-backed arenas are slow.
		sizes = sizes[:1]
	}
	for _, ps := range sizes {
		t.Run(fmt.Sprintf("%dKiB pages", ps>>10), func(t *testing.T) {
			pmd := pmdOrder(ps)
			maxOrder := pmd
			if !*cowcFull && ps<<maxOrder > cowcMaxFolio {
				maxOrder = log2(cowcMaxFolio / ps)
			}
			cfgs := memConfigs(ps, pmd, maxOrder)
			for _, c := range anonTestCases {
				for _, cfg := range cfgs {
					line(t, c.desc+" "+cfg.name, ps, cfg.order, func(tc *tcase) {
						mem, size := cfg.setup(tc, ps<<cfg.order)
						c.fn(tc, mem, size)
					})
				}
			}
			if *cowcFull || ps<<pmd <= cowcMaxFolio {
				for _, c := range anonTHPTestCases {
					line(t, c.desc, ps, pmd, func(tc *tcase) {
						mem, size := runWithTHP(tc, ps<<pmd, thpPMD)
						c.fn(tc, mem, size)
					})
				}
			}
			for _, c := range nonAnonTestCases {
				line(t, c.desc+" with shared zeropage", ps, 0, func(tc *tcase) {
					mem, smem := runWithZeroPage(tc)
					c.fn(tc, mem, smem, ps)
				})
			}
		})
	}
}

// runWithZeroPage maps two private pages and reads both, so that both map
// the shared zero page (run_with_zeropage).
func runWithZeroPage(tc *tcase) (mem, smem cow.Addr) {
	e, s := tc.e, tc.s
	mem = e.Map(s, tc.ps, cow.ProtRead|cow.ProtWrite)
	smem = e.Map(s, tc.ps, cow.ProtRead|cow.ProtWrite)
	e.Read(s, mem, 1)
	e.Read(s, smem, 1)
	for _, a := range []cow.Addr{mem, smem} {
		if m, ok := s.Pagemap(a); !ok || !m.Zero {
			tc.t.Fatalf("a read of fresh memory did not map the shared zero page: %+v", m)
		}
	}
	return mem, smem
}

// pmdOrder is the PMD order for base pages of ps bytes: a page-table page
// holds ps/8 entries.
func pmdOrder(ps int) int { return log2(ps / 8) }

func log2(n int) int {
	o := 0
	for 1<<o < n {
		o++
	}
	return o
}
