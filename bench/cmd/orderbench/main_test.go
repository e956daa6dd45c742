package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/bench"
)

// TestEndToEnd runs the command in its short mode with every metric (-v),
// and decodes everything it wrote: the JSON report, the CSV, and each
// chart as PNG (image/png) and SVG (encoding/xml).
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	jsonPath, csvPath, plots := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "plots")
	args := []string{"-short", "-v", "-runs", "2", "-size", "4MiB", "-json", jsonPath, "-csv", csvPath, "-plot", plots}
	if testing.Short() { // the race run: fewer policies, one round
		args = append(args, "-orders", "4KiB,2MiB,default", "-runs", "1")
	}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"geometry:", "baselines", "seqfill", "forkchurn", "2MiB/folio-cow", "kernel-THP", "recommendations", "Fork latency"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table has no %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "forkchurn") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) {
		t.Fatal("invalid JSON")
	}
	rep, err := bench.ReadJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Config.Size != 4<<20 || len(rep.Results) == 0 || len(rep.Recommendations) != len(bench.Workloads()) || rep.Platform.PageSize == 0 {
		t.Fatalf("JSON report: size %d, %d results, %d recommendations, page %d",
			rep.Config.Size, len(rep.Results), len(rep.Recommendations), rep.Platform.PageSize)
	}

	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(rep.Results)+1 {
		t.Errorf("CSV has %d rows for %d results", len(rows), len(rep.Results))
	}

	for _, chart := range []string{bench.ChartTimeMemory, bench.ChartFaultCost, bench.ChartForkScale} {
		pf, err := os.Open(filepath.Join(plots, chart+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(pf)
		pf.Close()
		if err != nil {
			t.Fatalf("%s.png: %v", chart, err)
		}
		if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 200 {
			t.Errorf("%s.png is %v", chart, b)
		}
		checkSVG(t, filepath.Join(plots, chart+".svg"))
	}
}

// checkSVG parses an SVG file to its end and checks its root is <svg> and
// that it draws something.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	var root string
	elems := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			elems++
		}
	}
	if root != "svg" || elems < 20 {
		t.Errorf("%s: root <%s>, %d elements", path, root, elems)
	}
}

func TestJSONToStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-short", "-quiet", "-runs", "1", "-size", "4MiB", "-workloads", "sparse", "-orders", "4KiB,2MiB", "-no-kernel", "-json", "-"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("-quiet, yet stderr has %q", stderr.String())
	}
	rep, err := bench.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Policy != "4KiB" || rep.Results[1].Policy != "2MiB" {
		t.Errorf("results %+v, want sparse under 4KiB and 2MiB only", rep.Results)
	}
	if r := rep.Recommendations[0]; r.Policy != "4KiB" {
		t.Errorf("sparse writes every 64 KiB: recommended %s (%s), want 4KiB", r.Policy, r.Why)
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-size", "3MiB"},
		{"-size", "lots"},
		{"-runs", "0"},
		{"-from", "r.json", "-short"},
		{"-workloads", "nosuch"},
		{"-orders", "3KiB"},
		{"-cow", "leaf"},
		{"-nosuchflag"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"-quiet"}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
		if stderr.Len() == 0 || stdout.Len() != 0 {
			t.Errorf("%v: stderr %q, stdout %q", args, stderr.String(), stdout.String())
		}
	}
}

// TestSummary: the default output is the short answer: a row per
// workload with the policy to use, its time and bloat, the runner-up and
// by how much, how it was decided, then the cow.Options to paste; no
// baselines, no metric columns.
func TestSummary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-short", "-quiet", "-runs", "2", "-size", "4MiB", "-workloads", "sparse,seqfill", "-orders", "4KiB,2MiB,default", "-no-kernel"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 20 {
		t.Errorf("the summary has %d lines, want a short table:\n%s", len(lines), out)
	}
	if !strings.HasPrefix(lines[0], "which folio order: 4MiB per workload") {
		t.Errorf("first line %q", lines[0])
	}
	for _, want := range []string{"workload", "use", "runner-up", "slower by", "decided by", "cow.Options to use", "how: a policy qualifies", "-v"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary has no %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"baselines", "memclr", "fork p50", "Fork latency"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("the summary has %q, which belongs behind -v:\n%s", unwanted, out)
		}
	}
	// sparse: only 4 KiB folios keep the bloat in bounds, and its literal.
	row := lineWith(t, lines, "sparse ")
	if f := strings.Fields(row); f[1] != "4KiB" || f[3] != "0%" || !strings.Contains(row, "the only policy within the bloat threshold") {
		t.Errorf("sparse row %q", row)
	}
	if l := lineWith(t, lines, "  sparse "); !strings.Contains(l, "cow.Options{Orders: cow.Orders()}") || !strings.Contains(l, "// orders {0}") {
		t.Errorf("sparse literal %q", l)
	}
	// seqfill: a runner-up and a signed percentage.
	if f := strings.Fields(lineWith(t, lines, "seqfill ")); len(f) < 8 || f[5] == "-" || !strings.ContainsAny(f[6][:1], "+-") {
		t.Errorf("seqfill row %q: want a runner-up and how much slower", f)
	}
}

func lineWith(t *testing.T, lines []string, prefix string) string {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starts with %q in:\n%s", prefix, strings.Join(lines, "\n"))
	return ""
}

// TestFrom: -from prints a saved run without running, recommends again at
// an explicit -bloat, and refuses the flags of a run.
func TestFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-short", "-quiet", "-runs", "1", "-size", "4MiB", "-workloads", "sparse", "-orders", "4KiB,2MiB", "-no-kernel", "-json", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	saved := stdout.String()
	stdout.Reset()
	if code := run([]string{"-from", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("-from: exit %d: %s", code, stderr.String())
	}
	if stdout.String() != saved || !strings.Contains(saved, "cow.Options{Orders: cow.Orders()}") {
		t.Errorf("-from printed:\n%s\nthe run printed:\n%s", stdout.String(), saved)
	}
	stdout.Reset()
	// One write every 64 KiB in 2 MiB folios bloats 1500 %: within 2000 %.
	if code := run([]string{"-from", path, "-bloat", "20", "-json", "-"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-from -bloat: exit %d: %s", code, stderr.String())
	}
	rep, err := bench.ReadJSON(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Config.Bloat != 20 || len(rep.Recommendations) != 1 || rep.Recommendations[0].Excluded != nil {
		t.Errorf("-bloat 20: threshold %v, recommendations %+v", rep.Config.Bloat, rep.Recommendations)
	}
	stderr.Reset()
	if code := run([]string{"-from", path, "-size", "4MiB"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-size has no effect with -from") {
		t.Errorf("-from -size: exit %d, %q", code, stderr.String())
	}
	if code := run([]string{"-from", filepath.Join(t.TempDir(), "nosuch.json")}, &stdout, &stderr); code != 1 {
		t.Errorf("-from a missing file: exit %d", code)
	}
}

// TestShortPrecedence: -short sets small values for the flags not given;
// a flag given explicitly wins, whatever its place on the line.
func TestShortPrecedence(t *testing.T) {
	for _, c := range []struct {
		args                 []string
		size                 int64
		rounds, passes, runs int
		duration             time.Duration
	}{
		{[]string{}, 256 << 20, bench.DefaultForkRounds, bench.DefaultScanPasses, 3, 600 * time.Millisecond},
		{[]string{"-short"}, 8 << 20, 2, 1, 3, 0},
		{[]string{"-short", "-size", "16MiB"}, 16 << 20, 2, 1, 3, 0},
		{[]string{"-size", "16MiB", "-short"}, 16 << 20, 2, 1, 3, 0},
		{[]string{"-short", "-size", "256MiB", "-rounds", "8", "-passes", "4", "-duration", "1s", "-runs", "4"}, 256 << 20, 8, 4, 4, time.Second},
		{[]string{"-size", "2MiB", "-short"}, 2 << 20, 2, 1, 3, 0},
	} {
		cmd, err := parseArgs(append([]string{"-quiet"}, c.args...), io.Discard)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		g := cmd.cfg
		if g.Size != c.size || g.ForkRounds != c.rounds || g.ScanPasses != c.passes || g.MinReps != c.runs || g.Duration != c.duration {
			t.Errorf("%v: size %d rounds %d passes %d runs %d duration %v; want %d %d %d %d %v",
				c.args, g.Size, g.ForkRounds, g.ScanPasses, g.MinReps, g.Duration, c.size, c.rounds, c.passes, c.runs, c.duration)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "4096B": 4096, "64KiB": 64 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30, " 2mib ": 2 << 20,
		"64KB": 64000, "1MB": 1e6, "1GB": 1e9, "1gb": 1e9, "4000kB": 4e6,
	} {
		if got, err := parseSize(in); got != want || err != nil {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, says := range map[string]string{
		"64K": "ambiguous: write 64KiB (binary, powers of 1024) or 64KB (decimal",
		"1g":  "ambiguous: write 1GiB",
		"2M":  "ambiguous",
		"":    "bad size", "-1": "bad size", "0": "bad size", "MiB": "bad size", "1TiB": "bad size",
		"1.5GiB": "bad size", "lots": "bad size", "99999999999GiB": "bad size",
	} {
		_, err := parseSize(in)
		if !errors.Is(err, bench.ErrInvalid) || !strings.Contains(err.Error(), says) {
			t.Errorf("parseSize(%q): %v, want ErrInvalid saying %q", in, err, says)
		}
	}
}

// TestSizeFlag: -size 1GB is 10^9 bytes, which the arena cannot map (not
// a multiple of 2 MiB): an error that says so and names 1GiB, never a
// silent GiB.
func TestSizeFlag(t *testing.T) {
	for in, says := range map[string]string{
		"1GB":  `size "1GB" is 1000000000 bytes, not a multiple of 2MiB: GB is decimal (powers of 1000); did you mean 1GiB?`,
		"64MB": "did you mean 64MiB?",
		"3MiB": "the nearest are 2MiB and 4MiB",
		"1MiB": "the least is 2MiB",
		"1G":   "ambiguous",
	} {
		// parseArgs, not run: were the size taken, run would measure it.
		if _, err := parseArgs([]string{"-quiet", "-size", in}, io.Discard); !errors.Is(err, bench.ErrInvalid) || !strings.Contains(err.Error(), says) {
			t.Errorf("-size %s: %v; want ErrInvalid saying %q", in, err, says)
		}
	}
	for in, want := range map[string]int64{"1GiB": 1 << 30, "2097152": 2 << 20, "4194304B": 4 << 20, "1048576KB": 1048576e3} {
		cmd, err := parseArgs([]string{"-size", in}, io.Discard)
		if err != nil || cmd.cfg.Size != want {
			t.Errorf("-size %s: %d, %v; want %d", in, cmd.cfg.Size, err, want)
		}
	}
}
