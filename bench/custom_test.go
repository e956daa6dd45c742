package bench

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
)

// counters is a custom workload: n increments of 8-byte counters at
// random, each read then written back, like a hash table's.
func counters(n int) Workload {
	return Workload{
		Name: "counters",
		Func: func(r *Region) error {
			var b [8]byte
			for range n {
				at := r.Addr + cow.Addr(r.Rand.Int64N(r.Size/8)*8)
				if _, err := r.Space.ReadAt(b[:], int64(at)); err != nil {
					return err
				}
				v := binary.LittleEndian.Uint64(b[:]) + 1
				r.Mix(v)
				binary.LittleEndian.PutUint64(b[:], v)
				if _, err := r.Space.WriteAt(b[:], int64(at)); err != nil {
					return err
				}
				r.Op(1)
			}
			return nil
		},
	}
}

// TestCustomWorkload: a workload of one's own runs under every policy
// asked, with no kernel rows, does the same work under each (the same
// digest, a different one for another seed), has its touched pages
// counted from what it left non-zero, and gets a recommendation with the
// cow.Options literal to use.
func TestCustomWorkload(t *testing.T) {
	const n = 300
	cfg := Config{Size: testSize, Seed: 5, MinReps: 2, NoForkScale: true,
		Custom: []Workload{counters(n)}, Workloads: []string{"counters"}, Policies: []string{"4KiB", "64KiB", "2MiB", "default"}}
	rep, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results, want one per policy and no kernel rows: %+v", len(rep.Results), rep.Results)
	}
	// The pages the counters land on, replayed from the same seed.
	pages := map[int64]bool{}
	rng := newRun(&cfg, nil, testSize, 4096).rng
	for range n {
		pages[rng.Int64N(testSize/8)*8/4096] = true
	}
	for _, r := range rep.Results {
		if r.Kernel || r.Err != "" || r.Reps != 2 || len(r.RepWallNs) != 2 {
			t.Errorf("%s: kernel %v, error %q, %d reps %v", r.Policy, r.Kernel, r.Err, r.Reps, r.RepWallNs)
		}
		if r.Digest != rep.Results[0].Digest {
			t.Errorf("%s: digest %#x, %s's %#x", r.Policy, r.Digest, rep.Results[0].Policy, rep.Results[0].Digest)
		}
		if r.Ops != n || r.OpsPerSec <= 0 || r.TouchedPages != int64(len(pages)) || r.ResidentPages < r.TouchedPages {
			t.Errorf("%s: %d ops, touched %d pages (want %d), resident %d", r.Policy, r.Ops, r.TouchedPages, len(pages), r.ResidentPages)
		}
		if !strings.HasPrefix(r.Options, "cow.Options{") {
			t.Errorf("%s: options %q", r.Policy, r.Options)
		}
	}
	if r := rep.Results[0]; r.Policy != "4KiB" || r.ResidentPages != r.TouchedPages {
		t.Errorf("4KiB folios: resident %d for %d touched", r.ResidentPages, r.TouchedPages)
	}
	if len(rep.Recommendations) != 1 || rep.Recommendations[0].Workload != "counters" || rep.Recommendations[0].Options == "" {
		t.Errorf("recommendations %+v", rep.Recommendations)
	}

	other := cfg
	other.Seed = 6
	other.Policies = []string{"4KiB"}
	rep6, err := Run(other)
	if err != nil {
		t.Fatal(err)
	}
	if rep6.Results[0].Digest == rep.Results[0].Digest {
		t.Errorf("seeds 5 and 6 gave the same digest")
	}
}

// TestCustomWorkloadForks: a custom workload that forks runs with both COW
// units, on a size of its own, and its Fork copies show in its results.
func TestCustomWorkloadForks(t *testing.T) {
	snap := Workload{
		Name:  "snap",
		Forks: true,
		Size:  2 << 20,
		Func: func(r *Region) error {
			buf := make([]byte, 4096)
			for i := range buf {
				buf[i] = byte(i) | 1
			}
			if _, err := r.Space.WriteAt(buf, int64(r.Addr)); err != nil {
				return err
			}
			child, err := r.Space.Fork()
			if err != nil {
				return err
			}
			defer child.Close()
			buf[0] = 0xff
			_, err = r.Space.WriteAt(buf[:1], int64(r.Addr))
			r.Op(1)
			return err
		},
	}
	rep, err := Run(Config{Size: testSize, MinReps: 1, NoForkScale: true, Custom: []Workload{snap},
		Workloads: []string{"snap"}, Policies: []string{"4KiB", "2MiB"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Policy)
		if r.WPCopy != 1 || r.TouchedPages != 1 {
			t.Errorf("%s: %d COW copies, %d pages touched; want 1 and 1", r.Policy, r.WPCopy, r.TouchedPages)
		}
	}
	if want := []string{"4KiB", "2MiB", "4KiB" + folioCOWSuffix, "2MiB" + folioCOWSuffix}; !slices.Equal(names, want) {
		t.Errorf("policies %v, want %v", names, want)
	}
	if r := rep.Results[3]; r.CopyBytes != 2<<20 || r.Options != "cow.Options{Orders: cow.Orders(9), CopyUnit: cow.CopyFolio}" {
		t.Errorf("2MiB folio COW: copied %d bytes, options %q", r.CopyBytes, r.Options)
	}
}

// TestCustomWorkloadZeros: a page written only with zeros reads as never
// touched, as Region documents.
func TestCustomWorkloadZeros(t *testing.T) {
	zeros := Workload{Name: "zeros", Func: func(r *Region) error {
		page := make([]byte, 4096)
		if _, err := r.Space.WriteAt(page, int64(r.Addr)); err != nil { // zeros: untouched
			return err
		}
		page[100] = 1
		_, err := r.Space.WriteAt(page, int64(r.Addr)+3*4096)
		return err
	}}
	rep, err := Run(Config{Size: testSize, MinReps: 1, NoForkScale: true, Custom: []Workload{zeros},
		Workloads: []string{"zeros"}, Policies: []string{"4KiB"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.ResidentPages != 2 || r.TouchedPages != 1 || r.BloatPages != 1 {
		t.Errorf("resident %d, touched %d, bloat %d; want 2, 1, 1", r.ResidentPages, r.TouchedPages, r.BloatPages)
	}
}

func TestCustomWorkloadInvalid(t *testing.T) {
	f := func(*Region) error { return nil }
	for name, c := range map[string][]Workload{
		"no name":          {{Func: f}},
		"no Func":          {{Name: "x"}},
		"a built-in name":  {{Name: "sparse", Func: f}},
		"a name twice":     {{Name: "x", Func: f}, {Name: "x", Func: f}},
		"a size not 2 MiB": {{Name: "x", Func: f, Size: 3 << 20}},
		"a negative size":  {{Name: "x", Func: f, Size: -2 << 20}},
	} {
		if _, err := Run(Config{Size: testSize, Custom: c}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := Run(Config{Size: testSize, Workloads: []string{"nosuch"}, Custom: []Workload{{Name: "x", Func: f}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown workload: %v", err)
	}

	// An error of the workload ends the run and is wrapped, not lost.
	errMine := errors.New("my workload failed")
	_, err := Run(Config{Size: testSize, NoKernel: true, NoForkScale: true, Workloads: []string{"bad"},
		Custom: []Workload{{Name: "bad", Func: func(*Region) error { return errMine }}}})
	if !errors.Is(err, errMine) || !strings.Contains(err.Error(), "bad under 4KiB") {
		t.Errorf("a failing workload: %v", err)
	}
}
