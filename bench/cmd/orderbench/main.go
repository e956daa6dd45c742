// Command orderbench answers "which folio order should my workload use?"
// with numbers: it runs the bench package's workloads under every policy,
// with the host kernel's figures measured in the same run, and prints on
// stdout, per workload, the policy to use, the runner-up and by how much,
// and the cow.Options literal to paste (progress goes to stderr). Policies
// whose times are within the run-to-run spread of each pair's repetitions
// are a tie, broken by memory, copies and simplicity, not by noise.
//
//	go run ./bench/cmd/orderbench                         # the default run: 256 MiB, 3-5 rounds a pair; minutes on 2 cores
//	go run ./bench/cmd/orderbench -v                      # every metric, with the baselines
//	go run ./bench/cmd/orderbench -short                  # a few seconds, tiny sizes
//	go run ./bench/cmd/orderbench -json out.json -csv out.csv -plot charts/
//	go run ./bench/cmd/orderbench -from out.json -bloat 2 # the answer of a saved run, at another threshold
//	go run ./bench/cmd/orderbench -workloads sparse,forkchurn -orders 4KiB,64KiB,2MiB -size 1GiB
//
// Sizes take a unit: KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers
// of 1000), so -size 1GB is 10^9 bytes, which is refused as not a multiple
// of 2 MiB; a bare K, M or G is refused as ambiguous. Flags given
// explicitly win over -short's small settings.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/anonfolio/anonfolio/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is what the flags ask for.
type command struct {
	cfg      bench.Config
	from     string // -from: a saved report to print instead of running
	bloatSet bool   // -bloat given: -from recommends again at it
	jsonOut  string
	csvOut   string
	plotDir  string
	verbose  bool
	quiet    bool
}

// errReported: the flag package has already said what is wrong.
var errReported = errors.New("reported")

// The settings of -short, for each flag not given explicitly.
const (
	shortSize     = 8 << 20
	shortRounds   = 2
	shortPasses   = 1
	shortDuration = 0
)

// parseArgs turns the arguments into a command. Its errors wrap
// bench.ErrInvalid or are errReported.
func parseArgs(args []string, stderr io.Writer) (command, error) {
	fs := flag.NewFlagSet("orderbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c         command
		cfg       = &c.cfg
		size      = fs.String("size", "256MiB", "memory each workload works on: a multiple of 2MiB, with a unit KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000)")
		workloads = fs.String("workloads", "", "comma-separated workloads (default all): "+strings.Join(workloadNames(), ","))
		orders    = fs.String("orders", "", "comma-separated policies (default all): "+strings.Join(bench.PolicyNames(), ","))
		cowUnits  = fs.String("cow", "page,folio", "COW units of the forking workloads: page, folio or both")
		sparse    = fs.String("sparse", "64KiB", "sparse workload: one write every this many bytes")
		pinRange  = fs.String("pin-range", "64KiB", "pinned-I/O range size")
		short     = fs.Bool("short", false, fmt.Sprintf("small and quick, for CI: -size %s -rounds %d -passes %d -duration %d, except for those given explicitly", mib(shortSize), shortRounds, shortPasses, shortDuration))
		noKernel  = fs.Bool("no-kernel", false, "leave out the workloads run on plain kernel memory")
	)
	fs.StringVar(&c.jsonOut, "json", "", "write the report as JSON to this file (- for stdout, instead of the table)")
	fs.StringVar(&c.csvOut, "csv", "", "write one CSV row per result to this file (- for stdout, instead of the table)")
	fs.StringVar(&c.plotDir, "plot", "", "write PNG and SVG charts into this directory")
	fs.StringVar(&c.from, "from", "", "print the report saved by an earlier -json instead of running (with -bloat: recommend again at that threshold)")
	fs.BoolVar(&c.verbose, "v", false, "print every metric, the baselines and the Fork scale, not only the recommendations")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress on stderr")
	fs.IntVar(&cfg.MinReps, "runs", bench.DefaultMinReps, "run each (workload, policy) at least this many times; the median is reported and the spread of the runs decides ties")
	fs.DurationVar(&cfg.Duration, "duration", 600*time.Millisecond, "after -runs runs, repeat each (workload, policy) until it has run this long (at most 5 runs, or -runs)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of every workload's addresses and values")
	fs.Float64Var(&cfg.Bloat, "bloat", bench.DefaultBloat, "recommendation threshold: resident pages beyond those touched, as a fraction of them")
	fs.Float64Var(&cfg.WritePercent, "write-pct", bench.DefaultWritePercent, "fork churn: percent of pages written per round")
	fs.IntVar(&cfg.ForkRounds, "rounds", bench.DefaultForkRounds, "fork churn: Forks per run")
	fs.IntVar(&cfg.ScanPasses, "passes", bench.DefaultScanPasses, "read-mostly scan: passes per run")
	if err := fs.Parse(args); err != nil {
		return c, errReported
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", bench.ErrInvalid, fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.bloatSet = set["bloat"]
	if c.from != "" {
		for name := range set {
			switch name {
			case "from", "bloat", "v", "quiet", "json", "csv", "plot":
			default:
				return c, fmt.Errorf("%w: -%s has no effect with -from, which prints a saved run", bench.ErrInvalid, name)
			}
		}
		return c, nil
	}

	var err error
	if cfg.Size, err = parseMemorySize(*size); err != nil {
		return c, fmt.Errorf("-size: %w", err)
	}
	s, err := parseSize(*sparse)
	if err != nil {
		return c, fmt.Errorf("-sparse: %w", err)
	}
	cfg.SparseStride = int(s)
	p, err := parseSize(*pinRange)
	if err != nil {
		return c, fmt.Errorf("-pin-range: %w", err)
	}
	cfg.PinRange = int(p)
	cfg.Workloads = list(*workloads)
	cfg.Policies = list(*orders)
	cfg.COW = list(*cowUnits)
	cfg.NoKernel = *noKernel
	cfg.MaxReps = max(bench.DefaultMaxReps, cfg.MinReps)
	if *short { // small settings, except where a flag was given
		if !set["size"] {
			cfg.Size = shortSize
		}
		if !set["rounds"] {
			cfg.ForkRounds = shortRounds
		}
		if !set["passes"] {
			cfg.ScanPasses = shortPasses
		}
		if !set["duration"] {
			cfg.Duration = shortDuration
		}
	}
	if cfg.MinReps <= 0 {
		return c, fmt.Errorf("%w: -runs %d: at least 1", bench.ErrInvalid, cfg.MinReps)
	}
	if !c.quiet {
		start := time.Now()
		cfg.Progress = func(line string) {
			fmt.Fprintf(stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), line)
		}
	}
	return c, nil
}

// run is the command: it returns the exit status (2 for bad usage).
func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, stderr)
	if err != nil {
		if err != errReported {
			fmt.Fprintf(stderr, "orderbench: %v\n", err)
		}
		return 2
	}
	var rep *bench.Report
	if c.from != "" {
		rep, err = readReport(c.from)
		if err == nil {
			if c.bloatSet {
				rep.Config.Bloat = c.cfg.Bloat
			}
			rep.Recommendations = bench.Recommend(rep.Results, rep.Config.Bloat)
		}
	} else {
		rep, err = bench.Run(c.cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "orderbench: %v\n", err)
		if errors.Is(err, bench.ErrInvalid) {
			return 2
		}
		return 1
	}
	if err := c.write(rep, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "orderbench: %v\n", err)
		return 1
	}
	return 0
}

// write writes the report where the flags ask: JSON, CSV and charts, and
// on stdout the summary (-v: every metric) unless JSON or CSV went there.
func (c *command) write(rep *bench.Report, stdout, stderr io.Writer) error {
	toStdout := false
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{c.jsonOut, rep.WriteJSON}, {c.csvOut, rep.WriteCSV}} {
		switch out.path {
		case "":
		case "-":
			toStdout = true
			if err := out.write(stdout); err != nil {
				return err
			}
		default:
			if err := writeFile(out.path, out.write); err != nil {
				return err
			}
		}
	}
	if c.plotDir != "" {
		files, err := rep.WritePlots(c.plotDir)
		if err != nil {
			return err
		}
		if !c.quiet {
			fmt.Fprintf(stderr, "charts: %s\n", strings.Join(files, " "))
		}
	}
	switch {
	case toStdout:
		return nil
	case c.verbose:
		return rep.WriteTable(stdout)
	}
	if err := rep.WriteSummary(stdout); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, "every metric, with the kernel's: -v; machine-readable: -json FILE, -csv FILE; charts: -plot DIR")
	return err
}

func readReport(path string) (*bench.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep, err := bench.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rep, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// list splits a comma-separated flag; "" is nil (everything).
func list(s string) []string {
	if s == "" {
		return nil
	}
	var l []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			l = append(l, x)
		}
	}
	return l
}

func workloadNames() []string {
	var n []string
	for _, w := range bench.Workloads() {
		n = append(n, w.Name)
	}
	return n
}
