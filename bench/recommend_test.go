package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// res is a hand-made result; reps are the times of its repetitions in ms
// (none: one run, its spread unmeasured), ms their median.
func res(workload, policy string, ms float64, resident, touched int64, reps ...float64) Result {
	r := Result{Workload: workload, Policy: policy, WallNs: msNs(ms), Reps: max(1, len(reps)),
		ResidentPages: resident, TouchedPages: touched, BloatPages: resident - touched}
	r.Bloat = float64(r.BloatPages) / float64(touched)
	for _, x := range reps {
		r.RepWallNs = append(r.RepWallNs, msNs(x))
	}
	return r
}

func msNs(ms float64) int64 { return int64(ms * float64(time.Millisecond)) }

func TestRecommend(t *testing.T) {
	results := []Result{
		// sparse: the large orders are faster here but bloat 15×.
		res("sparse", "2MiB", 1.0, 1600, 100),
		res("sparse", "4KiB", 3.0, 100, 100),
		res("sparse", "16KiB", 2.0, 140, 100), // 40 %: within 50 %
		res("sparse", "64KiB", 1.5, 400, 100),
		{Workload: "sparse", Policy: KernelSmall, Kernel: true, WallNs: 1}, // kernel rows are no candidates
		{Workload: "sparse", Policy: "all", Err: "failed", WallNs: 1},      // nor failed pairs
		// fill: no bloat anywhere, one run each: ranked by time alone.
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
	if sp.Policy != "16KiB" || sp.RunnerUp != "4KiB" || sp.WallNs != msNs(2) || sp.RunnerUpWallNs != msNs(3) || sp.Bloat != 0.4 {
		t.Errorf("sparse: %+v, want 16KiB (2 ms, bloat 40%%) then 4KiB (3 ms)", sp)
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
	if fill.Policy != "2MiB" || fill.RunnerUp != "default" || len(fill.Excluded) != 0 || fill.Tied != nil || fill.NoiseMeasured {
		t.Errorf("fill: %+v, want 2MiB then default, nothing excluded, no tie, no noise measured", fill)
	}
	if d := fill.RunnerUpDelta(); d < 0.0199 || d > 0.0201 {
		t.Errorf("fill: the runner-up is %v slower, want 2%%", d)
	}
	if !strings.Contains(fill.Decided, "not measured") || !strings.Contains(fill.Why, "may be noise") {
		t.Errorf("fill: one run each, yet decided %q, why %q", fill.Decided, fill.Why)
	}

	h := recs[2]
	if h.Policy != "64KiB" || h.RunnerUp != "" || !strings.Contains(h.Why, "no policy kept bloat within 50%") {
		t.Errorf("hopeless: %+v, want the least bloated (64KiB) and why none qualified", h)
	}

	// A looser threshold lets 64KiB in (300 %), and it is faster than 16KiB.
	if r := Recommend(results, 3)[0]; r.Policy != "64KiB" || r.RunnerUp != "16KiB" || !slices.Equal(r.Excluded, []string{"2MiB"}) {
		t.Errorf("threshold 300%%: %+v, want 64KiB then 16KiB, 2MiB excluded", r)
	}
	// Equal times are a tie even unmeasured: the least bloat, then the
	// order listed (not the name) decide.
	tie := Recommend([]Result{res("w", "b", 1, 200, 150), res("w", "c", 1, 150, 150), res("w", "a", 1, 150, 150)}, 1)[0]
	if tie.Policy != "c" || tie.RunnerUp != "a" || !slices.Equal(tie.Tied, []string{"c", "a", "b"}) {
		t.Errorf("equal times: %+v, want c (least bloat, listed first) then a, then b", tie)
	}
	if Recommend(nil, 0.5) != nil {
		t.Error("no results, yet a recommendation")
	}
}

// TestRecommendTies: times within the run-to-run spread (the median over
// the workload's policies of each one's (slowest - fastest) / median) are
// a tie, broken by bloat, bytes copied, the default set, faults,
// the order listed; times beyond it are ranked.
func TestRecommendTies(t *testing.T) {
	// Runs spread by 6 % (0.3 ms of 5): 2MiB's 2 % lead is noise.
	noisy := []Result{
		res("fill", "4KiB", 10, 1000, 1000, 9.7, 10, 10.3),
		res("fill", "2MiB", 5, 1000, 1000, 4.9, 5, 5.2),
		res("fill", "default", 5.1, 1000, 1000, 5.0, 5.1, 5.3),
	}
	r := Recommend(noisy, 0.5)[0]
	if r.Policy != DefaultPolicy || r.RunnerUp != "2MiB" || !slices.Equal(r.Tied, []string{DefaultPolicy, "2MiB"}) {
		t.Fatalf("noisy: %+v, want default (tied with 2MiB, and the default set) then 2MiB", r)
	}
	if !r.NoiseMeasured || r.Noise < 0.0599 || r.Noise > 0.0601 {
		t.Errorf("noisy: noise %v (measured %v), want 6%%, the median spread", r.Noise, r.NoiseMeasured)
	}
	if d := r.RunnerUpDelta(); d > -0.0195 || d < -0.0197 {
		t.Errorf("the runner-up is %v slower; it is faster by 2 %%, within the noise", d)
	}
	for _, want := range []string{"tie of 2 within 6.0%", "the default set"} {
		if !strings.Contains(r.Decided, want) {
			t.Errorf("decided %q does not say %q", r.Decided, want)
		}
	}
	if !strings.Contains(r.Why, "runner-up 2MiB is 2.0% faster") {
		t.Errorf("why %q does not say the runner-up is faster", r.Why)
	}

	// The same medians with tight runs (0.2 %): 2MiB's lead is real.
	tight := []Result{
		res("fill", "4KiB", 10, 1000, 1000, 10, 10, 10.02),
		res("fill", "2MiB", 5, 1000, 1000, 5, 5, 5.01),
		res("fill", "default", 5.1, 1000, 1000, 5.1, 5.1, 5.11),
	}
	r = Recommend(tight, 0.5)[0]
	if r.Policy != "2MiB" || r.RunnerUp != DefaultPolicy || r.Tied != nil || !strings.Contains(r.Decided, "faster by 2.0%, beyond the 0.2% spread") {
		t.Errorf("tight: %+v, want 2MiB ahead beyond the spread", r)
	}

	// An erratic leader's lead is no lead: 2MiB's own rounds spread 40 %,
	// more than the median spread, and that is the noise.
	erratic := slices.Clone(tight)
	erratic[1] = res("fill", "2MiB", 5, 1000, 1000, 4, 5, 6)
	if r := Recommend(erratic, 0.5)[0]; r.Policy != DefaultPolicy || !slices.Equal(r.Tied, []string{DefaultPolicy, "2MiB"}) || r.Noise != 0.4 {
		t.Errorf("an erratic leader: %+v, want default tied with 2MiB within its 40%% spread", r)
	}

	// One pair with a wild run does not make every time a tie: the noise
	// is the median spread.
	outlier := slices.Clone(tight)
	outlier[0] = res("fill", "4KiB", 10, 1000, 1000, 10, 10, 30)
	if r := Recommend(outlier, 0.5)[0]; r.Policy != "2MiB" || r.Tied != nil {
		t.Errorf("one wild pair: %+v, want 2MiB alone (noise %v)", r, r.Noise)
	}

	// Each tie-break in turn: two policies 1 % apart with a 5 % spread.
	pair := func(a, b Result) Recommendation {
		a.RepWallNs = []int64{msNs(0.975), msNs(1), msNs(1.025)}
		b.RepWallNs = []int64{msNs(0.985), msNs(1.01), msNs(1.035)}
		return Recommend([]Result{a, b}, 10)[0]
	}
	fast, slow := res("w", "16KiB", 1, 100, 100), res("w", "2MiB", 1.01, 100, 100)
	for _, c := range []struct {
		name      string
		change    func(fast, slow *Result)
		want, why string
	}{
		{"less bloat", func(f, s *Result) { f.Bloat = 0.2 }, "2MiB", "least bloat"},
		// A few pages more are no reason: 0.4 % rounds to none.
		{"a few pages more", func(f, s *Result) { f.Bloat = 0.004; s.Policy = DefaultPolicy }, DefaultPolicy, "the default set"},
		{"fewer bytes copied", func(f, s *Result) { f.CopyBytes = 1 << 20 }, "2MiB", "fewest bytes copied"},
		{"the default set", func(f, s *Result) { s.Policy = DefaultPolicy; f.Faults, s.Faults = 1, 9 }, DefaultPolicy, "the default set"},
		{"fewer faults", func(f, s *Result) { f.Faults, s.Faults = 9, 1 }, "2MiB", "fewest faults"},
		{"the order listed", func(f, s *Result) {}, "16KiB", "listed first"},
	} {
		f, s := fast, slow
		c.change(&f, &s)
		r := pair(f, s)
		if r.Policy != c.want || len(r.Tied) != 2 || !strings.Contains(r.Decided, c.why) {
			t.Errorf("%s: %s (tied %v), decided %q; want %s, %q", c.name, r.Policy, r.Tied, r.Decided, c.want, c.why)
		}
	}
	// Noise comes from the qualifying policies only: a bloated policy's
	// wild runs do not make the others tie.
	bloated := append(slices.Clone(tight), res("fill", "huge", 1, 9000, 1000, 1, 1, 9))
	if r := Recommend(bloated, 0.5)[0]; r.Policy != "2MiB" || r.Tied != nil || !slices.Equal(r.Excluded, []string{"huge"}) {
		t.Errorf("a wild, bloated policy: %+v, want 2MiB alone, huge excluded", r)
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
