package bench

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// testSize is the memory of the unit tests' workloads: two PMD folios.
const testSize = 4 << 20

func testConfig(t testing.TB, seed uint64) *Config {
	t.Helper()
	cfg, err := Config{Size: testSize, Seed: seed, ForkRounds: 2, ScanPasses: 1, SparseStride: 16 << 10}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// testEnv is an arena that checks every invariant and counts every page
// back when the test ends (spacetest).
func testEnv(t testing.TB) *spacetest.Env {
	return spacetest.New(t, 2*testSize+arenaSlack, 0)
}

// testPolicies are every policy, or with -short (the race run) a few
// that cover each kind: the base page, contpte, PMD, all orders, folio COW.
func testPolicies(g folio.Geometry) []Policy {
	ps := Policies(g)
	if !testing.Short() {
		return ps
	}
	return slices.DeleteFunc(ps, func(p Policy) bool {
		return !slices.Contains([]string{"4KiB", "64KiB", "2MiB", "all", "2MiB" + folioCOWSuffix}, p.Name)
	})
}

func policyNamed(t testing.TB, g folio.Geometry, name string) Policy {
	t.Helper()
	for _, p := range Policies(g) {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no policy %q", name)
	return Policy{}
}

// TestWorkloadsDeterministic: a workload does the same for the same seed
// (the same ops, faults, pages touched and contents read back), something
// else for another seed, and, the order set being a matter of speed and
// memory only, the same under every policy: the digest covers what the
// fork-churn children streamed out, so it is also a check that every
// snapshot was isolated from the parent's writes.
func TestWorkloadsDeterministic(t *testing.T) {
	e := testEnv(t)
	g := e.A.Geometry()
	for _, w := range Workloads() {
		t.Run(w.Name, func(t *testing.T) {
			var first Result
			for i, p := range testPolicies(g) {
				if !w.Forks && p.CopyUnit != cow.CopyPage {
					continue
				}
				r, err := runOnSpace(testConfig(t, 7), e.A, w, p, nil)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = r
					again, err := runOnSpace(testConfig(t, 7), e.A, w, p, nil)
					if err != nil {
						t.Fatal(err)
					}
					if again.Digest != r.Digest || again.Ops != r.Ops || again.TouchedPages != r.TouchedPages ||
						!slices.Equal(again.FaultAlloc, r.FaultAlloc) || again.WPCopy != r.WPCopy {
						t.Fatalf("the same seed twice: %+v\nthen %+v", r, again)
					}
					other, err := runOnSpace(testConfig(t, 8), e.A, w, p, nil)
					if err != nil {
						t.Fatal(err)
					}
					if other.Digest == r.Digest {
						t.Fatalf("seeds 7 and 8 gave the same digest %#x", r.Digest)
					}
					continue
				}
				if r.Digest != first.Digest || r.Ops != first.Ops || r.TouchedPages != first.TouchedPages {
					t.Errorf("%s: digest %#x ops %d touched %d; %s: digest %#x ops %d touched %d",
						p.Name, r.Digest, r.Ops, r.TouchedPages, first.Policy, first.Digest, first.Ops, first.TouchedPages)
				}
			}
		})
	}
}

// TestMetricsAddUp: the per-order fault counts sum to the totals and agree
// with the arena's own allocation counts; the pages they brought in are
// the space's Resident, which is what its page table maps (read back with
// Pagemap); bloat is resident minus touched; the op counts are those of
// the workload's definition.
func TestMetricsAddUp(t *testing.T) {
	e := testEnv(t)
	g := e.A.Geometry()
	for _, w := range Workloads() {
		for _, pname := range []string{"4KiB", "64KiB", "2MiB", "default", "all", "2MiB" + folioCOWSuffix} {
			p := policyNamed(t, g, pname)
			if !w.Forks && p.CopyUnit != cow.CopyPage {
				continue
			}
			t.Run(w.Name+"/"+pname, func(t *testing.T) {
				cfg := testConfig(t, 3)
				var st cow.Stats
				var mapped int64
				r, err := runOnSpace(cfg, e.A, w, p, func(s *cow.Space, base cow.Addr) {
					st = s.Stats()
					mapped = mappedPages(s, base, testSize)
				})
				if err != nil {
					t.Fatal(err)
				}
				var sum, fb, pages uint64
				for o := range r.FaultAlloc {
					sum += r.FaultAlloc[o]
					fb += r.FaultFallback[o]
					pages += r.FaultAlloc[o] << o
					if r.FaultAlloc[o] != st.FaultAlloc[o] {
						t.Errorf("FaultAlloc[%d] = %d, the space's Stats say %d", o, r.FaultAlloc[o], st.FaultAlloc[o])
					}
				}
				if sum != r.Faults || fb != r.Fallbacks {
					t.Errorf("faults per order sum to %d, fallbacks to %d; totals %d, %d", sum, fb, r.Faults, r.Fallbacks)
				}
				if r.ResidentPages != st.Resident || r.ResidentPages != mapped {
					t.Errorf("resident %d; the space's Stats %d; its page table maps %d", r.ResidentPages, st.Resident, mapped)
				}
				if r.BloatPages != r.ResidentPages-r.TouchedPages || r.TouchedPages <= 0 || r.BloatPages < 0 {
					t.Errorf("bloat %d, resident %d, touched %d", r.BloatPages, r.ResidentPages, r.TouchedPages)
				}
				// The arena allocated a folio for each fault and, for page
				// COW, an order-0 folio for each copy; nothing else.
				want := slices.Clone(r.FaultAlloc)
				if p.CopyUnit == cow.CopyPage {
					want[0] += r.WPCopy
				}
				if w.Forks && p.CopyUnit == cow.CopyFolio {
					var copied uint64
					for o, n := range r.ArenaAlloc {
						copied += (n - r.FaultAlloc[o]) << o
					}
					if copied*uint64(g.PageSize) != r.CopyBytes {
						t.Errorf("folio COW: the arena allocated %d pages beyond the faults, %d bytes were copied", copied, r.CopyBytes)
					}
				} else if !slices.Equal(r.ArenaAlloc, want) {
					t.Errorf("arena allocations per order %v, faults %v + %d copies", r.ArenaAlloc, r.FaultAlloc, r.WPCopy)
				}
				// Without a fork, a page comes from a fault or from a write
				// over the zero page that a read mapped (a WPCopy).
				if !w.Forks && pages+r.WPCopy != uint64(r.ResidentPages) {
					t.Errorf("faults brought in %d pages and %d zero-page copies, %d are resident", pages, r.WPCopy, r.ResidentPages)
				}
				if w.Name == "rmw" && st.ZeroPageMaps == 0 {
					t.Errorf("read-modify-write mapped no zero page: it did not read before writing")
				}
				checkOps(t, w, cfg, r)
			})
		}
	}
}

// mappedPages counts the pages of [base, base+size) that the space's page
// table maps to a page of its own (the zero page is not resident).
func mappedPages(s *cow.Space, base cow.Addr, size int) int64 {
	var n int64
	for off := 0; off < size; off += s.PageSize() {
		if e, ok := s.Pagemap(base + cow.Addr(off)); ok && e.PFN != 0 {
			n++
		}
	}
	return n
}

func checkOps(t *testing.T, w Workload, cfg *Config, r Result) {
	t.Helper()
	pages := cfg.Size / int64(r.PageSize)
	var want int64
	switch w.Name {
	case "seqfill":
		want = cfg.Size / 4096
	case "sparse":
		want = cfg.Size / int64(cfg.SparseStride)
	case "random":
		want = cfg.Size / 512
	case "rmw":
		want = cfg.Size / 512
	case "readscan":
		reads := int64(cfg.ScanPasses) * cfg.Size / fillChunk
		want = reads + reads/99
	case "forkchurn":
		want = int64(cfg.ForkRounds) * max(1, int64(float64(pages)*cfg.WritePercent/100))
		if r.Forks != cfg.ForkRounds || r.ForkP50Ns <= 0 || r.ForkP99Ns < r.ForkP50Ns {
			t.Errorf("%d forks, p50 %v p99 %v", r.Forks, r.ForkP50Ns, r.ForkP99Ns)
		}
		if r.WPCopy == 0 || r.CowNsPerPage <= 0 {
			t.Errorf("fork churn copied nothing: WPCopy %d", r.WPCopy)
		}
		if r.CopyUnit == "page" && r.CopyBytes != r.WPCopy*uint64(r.PageSize) {
			t.Errorf("page COW: %d copies, %d bytes", r.WPCopy, r.CopyBytes)
		}
	case "pinio":
		want = cfg.Size / int64(cfg.PinRange)
	default:
		t.Fatalf("no op count known for %s", w.Name)
	}
	if r.Ops != want {
		t.Errorf("%d ops, want %d", r.Ops, want)
	}
	if w.Name == "sparse" && r.TouchedPages != want {
		t.Errorf("sparse touched %d pages, wrote %d times a stride apart", r.TouchedPages, want)
	}
}

// TestReadModifyWrite: every slot the read-modify-write workload touched
// holds the sum of what its ops added, replayed from the seed: each op
// read back what the one before it wrote there.
func TestReadModifyWrite(t *testing.T) {
	e := testEnv(t)
	cfg := testConfig(t, 9)
	want := map[int64]uint64{}
	rng := newRun(cfg, nil, cfg.Size, e.A.PageSize()).rng
	for range cfg.Size / 512 {
		off := rng.Int64N(cfg.Size/8) * 8
		want[off] += rng.Uint64() | 1
	}
	for _, pname := range []string{"4KiB", "2MiB"} {
		var got map[int64]uint64
		_, err := runOnSpace(cfg, e.A, *WorkloadByName("rmw"), policyNamed(t, e.A.Geometry(), pname), func(s *cow.Space, base cow.Addr) {
			got = map[int64]uint64{}
			b := make([]byte, cfg.Size)
			if _, err := s.ReadAt(b, int64(base)); err != nil {
				t.Fatal(err)
			}
			for off := int64(0); off < cfg.Size; off += 8 {
				if v := binary.LittleEndian.Uint64(b[off:]); v != 0 {
					got[off] = v
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d slots hold a value, %d were updated", pname, len(got), len(want))
		}
		for off, v := range want {
			if got[off] != v {
				t.Errorf("%s: slot %#x holds %#x, want %#x", pname, off, got[off], v)
				break
			}
		}
	}
}
