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

	"github.com/anonfolio/anonfolio/bench"
)

// TestEndToEnd runs the command in its short mode, as CI does, and decodes
// everything it wrote: the JSON report, the CSV, and each chart as PNG
// (image/png) and SVG (encoding/xml).
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	jsonPath, csvPath, plots := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "plots")
	args := []string{"-short", "-size", "4MiB", "-json", jsonPath, "-csv", csvPath, "-plot", plots}
	if testing.Short() { // the race run: fewer policies
		args = append(args, "-orders", "4KiB,2MiB,default")
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
	if code := run([]string{"-short", "-quiet", "-size", "4MiB", "-workloads", "sparse", "-orders", "4KiB,2MiB", "-no-kernel", "-json", "-"}, &stdout, &stderr); code != 0 {
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

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "64KiB": 64 << 10, "64K": 64 << 10, "256MiB": 256 << 20, "2M": 2 << 20, "1GiB": 1 << 30, "1G": 1 << 30} {
		if got, err := parseSize(in); got != want || err != nil {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "0", "MiB", "1TiB", "1.5GiB"} {
		if _, err := parseSize(in); !errors.Is(err, bench.ErrInvalid) {
			t.Errorf("parseSize(%q): %v, want ErrInvalid", in, err)
		}
	}
}
