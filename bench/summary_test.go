package bench

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
)

// TestWriteSummary: on a hand-made report, the summary has one row per
// workload with the policy, its time and bloat, the runs, the runner-up
// and by how much (signed), how it was decided, and then the cow.Options
// literal of each recommendation with its orders.
func TestWriteSummary(t *testing.T) {
	with := func(r Result, options, orders, unit string) Result {
		r.Options, r.Orders, r.CopyUnit = options, orders, unit
		return r
	}
	rep := &Report{
		Platform: Platform{PageSize: 4096, Geometry: "page 4KiB, PMD 2MiB (order 9)"},
		Config:   Settings{Size: 64 << 20, Seed: 3, Bloat: 0.5},
		Results: []Result{
			with(res("fill", "2MiB", 5, 1000, 1000, 4.9, 5, 5.2), "cow.Options{Orders: cow.Orders(9)}", "{0,9}", "page"),
			with(res("fill", DefaultPolicy, 5.1, 1000, 1000, 5.0, 5.1, 5.3), "cow.Options{}", "{0,4,9}", "page"),
			with(res("fill", "4KiB", 10, 1000, 1000, 9.7, 10, 10.3), "cow.Options{Orders: cow.Orders()}", "{0}", "page"),
			with(res("churn", "64KiB/folio-cow", 2, 100, 100, 2, 2, 2.02), "cow.Options{Orders: cow.Orders(4), CopyUnit: cow.CopyFolio}", "{0,4}", "folio"),
			with(res("churn", "4KiB", 3, 100, 100, 3, 3, 3.03), "cow.Options{Orders: cow.Orders()}", "{0}", "page"),
			{Workload: "churn", Policy: KernelTHP, Kernel: true, WallNs: 1, Reps: 9},
		},
	}
	rep.Recommendations = Recommend(rep.Results, rep.Config.Bloat)
	var b bytes.Buffer
	if err := rep.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "which folio order: 64MiB per workload, seed 3, bloat threshold 50%") {
		t.Errorf("header %q", lines[0])
	}
	rows := map[string][]string{}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = append(rows[f[0]], l)
		}
	}
	check := func(workload string, n int, want ...string) {
		t.Helper()
		if len(rows[workload]) != 2 {
			t.Errorf("%s: %d lines, want its row and its literal:\n%s", workload, len(rows[workload]), out)
			return
		}
		l := rows[workload][n]
		for _, w := range want {
			if !strings.Contains(l, w) {
				t.Errorf("%s: %q does not say %q", workload, l, w)
			}
		}
	}
	// fill: 2MiB's 2 % lead is within the 6 % spread; the default set wins.
	check("fill", 0, " default ", "5.1ms", " 0% ", " 3 ", " 2MiB ", "-2.0%", "tie of 2 within 6.0%", "the default set")
	check("fill", 1, "cow.Options{}", "// orders {0,4,9}")
	// churn: 64KiB folio COW is 50 % ahead, beyond a 1 % spread.
	check("churn", 0, " 64KiB/folio-cow ", "2ms", " 4KiB ", "+50%", "faster by 50%, beyond the 1.0% spread")
	check("churn", 1, "cow.Options{Orders: cow.Orders(4), CopyUnit: cow.CopyFolio}", "// orders {0,4}, folio COW")
	if !strings.Contains(out, "how: "+TieRule) {
		t.Errorf("the summary does not say how it ranks:\n%s", out)
	}
	if strings.Contains(out, "kernel-THP") {
		t.Errorf("a kernel row in the summary:\n%s", out)
	}
}

// TestOptionsLiteral: the literal of each policy on this geometry: the
// orders by number, nothing for the default set, CopyFolio for folio COW.
func TestOptionsLiteral(t *testing.T) {
	e := testEnv(t)
	g := e.A.Geometry()
	var all []string
	for o := 1; o <= g.MaxOrder; o++ {
		all = append(all, fmt.Sprint(o))
	}
	want := map[string]string{
		"4KiB":              "cow.Options{Orders: cow.Orders()}",
		"16KiB/folio-cow":   "cow.Options{Orders: cow.Orders(2), CopyUnit: cow.CopyFolio}",
		"64KiB":             fmt.Sprintf("cow.Options{Orders: cow.Orders(%d)}", g.ContOrder),
		"2MiB":              fmt.Sprintf("cow.Options{Orders: cow.Orders(%d)}", g.PMDOrder),
		"all":               "cow.Options{Orders: cow.Orders(" + strings.Join(all, ", ") + ")}",
		"default":           "cow.Options{}",
		"default/folio-cow": "cow.Options{CopyUnit: cow.CopyFolio}",
	}
	for name, lit := range want {
		if got := optionsLiteral(policyNamed(t, g, name), cow.DefaultOrders(e.A)); got != lit {
			t.Errorf("%s: %s, want %s", name, got, lit)
		}
	}
}
