package bench

import (
	"bytes"
	"encoding/csv"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestRun: a whole run at a tiny size has every (workload, policy) pair and
// both kernel rows; every policy of ours, and the kernel rows, did the same
// work (equal digests; fork churn's kernel rows stream the parent instead
// of a snapshot, so theirs differ); the ratios are the figures over the
// baselines of the same run; the JSON and CSV carry it all.
func TestRun(t *testing.T) {
	cfg := Config{Size: testSize, MinReps: 2, ForkRounds: 2, ScanPasses: 1, Seed: 11, ForkScale: []float64{0.5, 1}}
	sets := len(orderSets)
	if testing.Short() { // the race run: every workload, fewer policies, one round
		cfg.Policies = []string{"4KiB", "2MiB", "default"}
		cfg.MinReps = 1
		sets = len(cfg.Policies)
	}
	rep, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, w := range Workloads() {
		want += 2 + sets
		if w.Forks {
			want += sets
		}
	}
	if len(rep.Results) != want {
		t.Fatalf("%d results, want %d", len(rep.Results), want)
	}
	digest := map[string]uint64{}
	for _, r := range rep.Results {
		if !r.Kernel {
			if r.Err != "" {
				t.Fatalf("%s/%s failed: %s", r.Workload, r.Policy, r.Err)
			}
			if d, ok := digest[r.Workload]; ok && d != r.Digest {
				t.Errorf("%s/%s: digest %#x, other policies %#x", r.Workload, r.Policy, r.Digest, d)
			}
			digest[r.Workload] = r.Digest
		}
	}
	b := rep.Baselines
	for _, r := range rep.Results {
		if r.Kernel && r.Err == "" && r.Workload != "forkchurn" && r.Digest != digest[r.Workload] {
			t.Errorf("%s/%s: digest %#x, ours %#x", r.Workload, r.Policy, r.Digest, digest[r.Workload])
		}
		if r.Err != "" {
			t.Logf("%s/%s unavailable: %s", r.Workload, r.Policy, r.Err)
			continue
		}
		if r.Reps != cfg.MinReps || len(r.RepWallNs) != r.Reps || !slices.Contains(r.RepWallNs, r.WallNs) || r.Spread < 0 {
			t.Errorf("%s/%s: %d reps %v, median %d, spread %v", r.Workload, r.Policy, r.Reps, r.RepWallNs, r.WallNs, r.Spread)
		}
		if r.WallNs <= 0 || r.Ops <= 0 || r.OpsPerSec <= 0 || r.NsPer4KiB <= 0 {
			t.Errorf("%s/%s: wall %d ops %d ops/s %v ns/4KiB %v", r.Workload, r.Policy, r.WallNs, r.Ops, r.OpsPerSec, r.NsPer4KiB)
		}
		if b.KernelFault.OK() && !near(r.FaultVsKernel, r.NsPer4KiB/b.KernelFault.Value) {
			t.Errorf("%s/%s: fault ratio %v, %v / %v", r.Workload, r.Policy, r.FaultVsKernel, r.NsPer4KiB, b.KernelFault.Value)
		}
		if k := kernelRow(rep.Results, r.Workload); r.Policy != KernelSmall && k != nil && k.Err == "" &&
			!near(r.TimeVsKernel, float64(r.WallNs)/float64(k.WallNs)) {
			t.Errorf("%s/%s: time ratio %v", r.Workload, r.Policy, r.TimeVsKernel)
		}
		if r.Forks > 0 && b.KernelFork.OK() && !near(r.ForkVsKernel, r.ForkP50Ns/b.KernelFork.Value) {
			t.Errorf("%s/%s: fork ratio %v", r.Workload, r.Policy, r.ForkVsKernel)
		}
	}
	if len(b.Memclr) != 3 || len(b.Memmove) != 3 || b.Memclr[0].NsPer4KiB <= 0 || !b.KernelFault.OK() {
		t.Errorf("baselines missing: %+v", b)
	}
	if len(rep.Recommendations) != len(Workloads()) {
		t.Errorf("%d recommendations for %d workloads", len(rep.Recommendations), len(Workloads()))
	}
	sizes, pols := forkScaleAxes(rep.ForkScale)
	if len(sizes) != 2 || len(pols) < 3 || pols[len(pols)-1] != KernelSmall {
		t.Errorf("fork scale: sizes %v policies %v", sizes, pols)
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rep) {
		t.Errorf("the report changed through JSON")
	}

	var cs bytes.Buffer
	if err := rep.WriteCSV(&cs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&cs).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(rep.Results)+1 || rows[0][0] != "workload" || rows[1][1] != rep.Results[0].Policy {
		t.Errorf("CSV: %d rows for %d results; header %v", len(rows), len(rep.Results), rows[0])
	}

	var tab bytes.Buffer
	rep.WriteTable(&tab)
	for _, w := range append(workloadNames(), "recommendations", "kernel fork()", "memclr 2MiB blocks") {
		if !strings.Contains(tab.String(), w) {
			t.Errorf("the table does not mention %q", w)
		}
	}
}

func workloadNames() []string {
	var n []string
	for _, w := range Workloads() {
		n = append(n, w.Name)
	}
	return n
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }
