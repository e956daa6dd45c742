package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func res(workload, policy string, ms float64, resident, touched int64) Result {
	r := Result{Workload: workload, Policy: policy, WallNs: int64(ms * float64(time.Millisecond)),
		ResidentPages: resident, TouchedPages: touched, BloatPages: resident - touched}
	r.Bloat = float64(r.BloatPages) / float64(touched)
	return r
}

func TestRecommend(t *testing.T) {
	results := []Result{
		// sparse: the large orders are faster here but bloat 15×.
		res("sparse", "2MiB", 1.0, 1600, 100),
		res("sparse", "4KiB", 3.0, 100, 100),
		res("sparse", "16KiB", 2.0, 140, 100), // 40 %: within 50 %
		res("sparse", "64KiB", 1.5, 400, 100),
		{Workload: "sparse", Policy: KernelSmall, Kernel: true, WallNs: 1}, // kernel rows are no candidates
		{Workload: "sparse", Policy: "all", Err: "failed", WallNs: 1},      // nor failed pairs
		// fill: no bloat anywhere; 2MiB is fastest, default a tie with it.
		res("fill", "4KiB", 10, 1000, 1000),
		res("fill", "2MiB", 5, 1000, 1000),
		res("fill", "default", 5.1, 1000, 1000),
		// hopeless: every policy bloats past the threshold.
		res("hopeless", "2MiB", 1, 5000, 100),
		res("hopeless", "64KiB", 2, 300, 100),
		res("hopeless", "256KiB", 0.5, 900, 100),
	}
	recs := Recommend(results, 0.5)
	if got := []string{recs[0].Workload, recs[1].Workload, recs[2].Workload}; len(recs) != 3 || !slices.Equal(got, []string{"sparse", "fill", "hopeless"}) {
		t.Fatalf("recommendations for %v, want sparse, fill, hopeless in that order", recs)
	}

	sp := recs[0]
	if sp.Policy != "16KiB" || sp.RunnerUp != "4KiB" {
		t.Errorf("sparse: %s then %s, want 16KiB then 4KiB", sp.Policy, sp.RunnerUp)
	}
	if !slices.Equal(sp.Excluded, []string{"2MiB", "64KiB"}) {
		t.Errorf("sparse: excluded %v, want the faster, bloated 2MiB and 64KiB", sp.Excluded)
	}
	for _, want := range []string{"runner-up 4KiB is 50% slower", "2MiB was faster", "bloats 1500%", "64KiB was faster"} {
		if !strings.Contains(sp.Why, want) {
			t.Errorf("sparse: why %q does not say %q", sp.Why, want)
		}
	}

	fill := recs[1]
	if fill.Policy != "2MiB" || fill.RunnerUp != "default" || len(fill.Excluded) != 0 {
		t.Errorf("fill: %+v, want 2MiB then default, nothing excluded", fill)
	}
	if !strings.Contains(fill.Why, "tie") {
		t.Errorf("fill: 5 ms against 5.1 ms is a tie on a noisy machine; why says %q", fill.Why)
	}

	h := recs[2]
	if h.Policy != "64KiB" || h.RunnerUp != "" || !strings.Contains(h.Why, "no policy kept bloat within 50%") {
		t.Errorf("hopeless: %+v, want the least bloated (64KiB) and why none qualified", h)
	}

	// A looser threshold lets 64KiB in (300 %), and it is faster than 16KiB.
	if r := Recommend(results, 3)[0]; r.Policy != "64KiB" || r.RunnerUp != "16KiB" || !slices.Equal(r.Excluded, []string{"2MiB"}) {
		t.Errorf("threshold 300%%: %+v, want 64KiB then 16KiB, 2MiB excluded", r)
	}
	// The same time breaks ties by resident pages, then by name.
	tie := Recommend([]Result{res("w", "b", 1, 200, 100), res("w", "a", 1, 150, 100), res("w", "c", 1, 150, 100)}, 1)[0]
	if tie.Policy != "a" || tie.RunnerUp != "c" {
		t.Errorf("equal times: %s then %s, want a then c", tie.Policy, tie.RunnerUp)
	}
	if Recommend(nil, 0.5) != nil {
		t.Error("no results, yet a recommendation")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	if p50, p99, p100 := percentile(d, 50), percentile(d, 99), percentile(d, 100); p50 != 50 || p99 != 99 || p100 != 100 {
		t.Errorf("p50 %d p99 %d p100 %d of 1..100", p50, p99, p100)
	}
	if p := percentile(d[:1], 99); p != 100 {
		t.Errorf("p99 of one sample: %d", p)
	}
	if percentile(nil, 50) != 0 || d[0] != 100 {
		t.Error("percentile of nothing, or it sorted its argument")
	}
}
