// Command orderbench answers "which folio order should my workload use?"
// with numbers: it runs the bench package's workloads under every policy,
// with the host kernel's figures measured in the same run, and prints an
// aligned table on stdout (progress goes to stderr).
//
//	go run ./bench/cmd/orderbench                         # the default run: about a minute on 2 cores (256 MiB, 600 ms a pair)
//	go run ./bench/cmd/orderbench -short                  # a few seconds, tiny sizes
//	go run ./bench/cmd/orderbench -json out.json -csv out.csv -plot charts/
//	go run ./bench/cmd/orderbench -workloads sparse,forkchurn -orders 4KiB,64KiB,2MiB -size 1GiB
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anonfolio/anonfolio/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it returns the exit status (2 for bad usage).
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orderbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       bench.Config
		size      = fs.String("size", "256MiB", "memory each workload works on (a multiple of 2MiB; suffixes KiB, MiB, GiB)")
		workloads = fs.String("workloads", "", "comma-separated workloads (default all): "+strings.Join(workloadNames(), ","))
		orders    = fs.String("orders", "", "comma-separated policies (default all): "+strings.Join(bench.PolicyNames(), ","))
		cowUnits  = fs.String("cow", "page,folio", "COW units of the forking workloads: page, folio or both")
		sparse    = fs.String("sparse", "64KiB", "sparse workload: one write every this many bytes")
		pinRange  = fs.String("pin-range", "64KiB", "pinned-I/O range size")
		jsonOut   = fs.String("json", "", "write the report as JSON to this file (- for stdout, instead of the table)")
		csvOut    = fs.String("csv", "", "write one CSV row per result to this file (- for stdout, instead of the table)")
		plotDir   = fs.String("plot", "", "write PNG and SVG charts into this directory")
		short     = fs.Bool("short", false, "tiny sizes and few rounds: a few seconds, for CI")
		quiet     = fs.Bool("quiet", false, "no progress on stderr")
		noKernel  = fs.Bool("no-kernel", false, "leave out the workloads run on plain kernel memory")
	)
	fs.DurationVar(&cfg.Duration, "duration", 600*time.Millisecond, "measure each (workload, policy) for at least this long, repeating it on a fresh space (at most 5 times; the median is reported)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of every workload's addresses and values")
	fs.Float64Var(&cfg.Bloat, "bloat", bench.DefaultBloat, "recommendation threshold: resident pages beyond those touched, as a fraction of them")
	fs.Float64Var(&cfg.WritePercent, "write-pct", bench.DefaultWritePercent, "fork churn: percent of pages written per round")
	fs.IntVar(&cfg.ForkRounds, "rounds", bench.DefaultForkRounds, "fork churn: Forks per run")
	fs.IntVar(&cfg.ScanPasses, "passes", bench.DefaultScanPasses, "read-mostly scan: passes per run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "orderbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var err error
	if cfg.Size, err = parseSize(*size); err != nil {
		return usage(stderr, "-size", err)
	}
	s, err := parseSize(*sparse)
	if err != nil {
		return usage(stderr, "-sparse", err)
	}
	cfg.SparseStride = int(s)
	p, err := parseSize(*pinRange)
	if err != nil {
		return usage(stderr, "-pin-range", err)
	}
	cfg.PinRange = int(p)
	cfg.Workloads = list(*workloads)
	cfg.Policies = list(*orders)
	cfg.COW = list(*cowUnits)
	cfg.NoKernel = *noKernel
	if *short {
		cfg.Size = min(cfg.Size, 8<<20)
		cfg.ForkRounds = min(cfg.ForkRounds, 2)
		cfg.ScanPasses = 1
		cfg.Duration = 0
	}
	if !*quiet {
		start := time.Now()
		cfg.Progress = func(line string) {
			fmt.Fprintf(stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), line)
		}
	}
	rep, err := bench.Run(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "orderbench: %v\n", err)
		if errors.Is(err, bench.ErrInvalid) {
			return 2
		}
		return 1
	}
	toStdout := false
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{*jsonOut, rep.WriteJSON}, {*csvOut, rep.WriteCSV}} {
		if out.path == "" {
			continue
		}
		if out.path == "-" {
			toStdout = true
			if err := out.write(stdout); err != nil {
				fmt.Fprintf(stderr, "orderbench: %v\n", err)
				return 1
			}
			continue
		}
		if err := writeFile(out.path, out.write); err != nil {
			fmt.Fprintf(stderr, "orderbench: %v\n", err)
			return 1
		}
	}
	if *plotDir != "" {
		files, err := rep.WritePlots(*plotDir)
		if err != nil {
			fmt.Fprintf(stderr, "orderbench: %v\n", err)
			return 1
		}
		if !*quiet {
			fmt.Fprintf(stderr, "charts: %s\n", strings.Join(files, " "))
		}
	}
	if !toStdout {
		if err := rep.WriteTable(stdout); err != nil {
			fmt.Fprintf(stderr, "orderbench: %v\n", err)
			return 1
		}
	}
	return 0
}

func usage(stderr io.Writer, flag string, err error) int {
	fmt.Fprintf(stderr, "orderbench: %s: %v\n", flag, err)
	return 2
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

// parseSize parses a byte count: a number with an optional K/KiB, M/MiB or
// G/GiB suffix (powers of two).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "B"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			mult, t = 1<<10, t[:n-1]
		case 'M', 'm':
			mult, t = 1<<20, t[:n-1]
		case 'G', 'g':
			mult, t = 1<<30, t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%w: bad size %q", bench.ErrInvalid, s)
	}
	return n * mult, nil
}
