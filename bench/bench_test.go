package bench

import (
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/folio"
)

// The Go benchmarks of the hot paths, each figure next to its baseline
// measured in the same process (the machine is shared and noisy):
//
//	go test -run XXX -bench . -count 5 ./bench | tee new.txt
//	benchstat old.txt new.txt
//
// -orderbench.size sets the memory each workload works on.
var benchSize = flag.Int64("orderbench.size", 64<<20, "bytes each benchmarked workload works on (a multiple of 2 MiB)")

var (
	benchOnce  sync.Once
	benchCfg   Config
	benchBase  Baselines
	benchError error
)

// benchSetup measures the baselines once, before any arena exists.
func benchSetup(b *testing.B) (*Config, *Baselines) {
	b.Helper()
	benchOnce.Do(func() {
		benchCfg, benchError = Config{Size: *benchSize, Seed: 1, NoForkScale: true}.withDefaults()
		if benchError == nil {
			benchBase = measureBaselines(&benchCfg)
		}
	})
	if benchError != nil {
		b.Fatal(benchError)
	}
	return &benchCfg, &benchBase
}

// BenchmarkBaselines reports the baselines themselves: memclr and memmove
// by block size, and the kernel's first-touch fault, fork() and COW fault.
func BenchmarkBaselines(b *testing.B) {
	cfg, _ := benchSetup(b)
	size := int(cfg.Size)
	b.Run("memclr+memmove", func(b *testing.B) {
		var clr, mv []Bandwidth
		for b.Loop() {
			clr, mv = bandwidth(size)
		}
		for i := range clr {
			b.ReportMetric(clr[i].NsPer4KiB, fmt.Sprintf("memclr%s-ns/4KiB", sizeString(int64(clr[i].Block))))
			b.ReportMetric(mv[i].NsPer4KiB, fmt.Sprintf("memmove%s-ns/4KiB", sizeString(int64(mv[i].Block))))
		}
	})
	for _, huge := range []bool{false, true} {
		b.Run("kernel-fault/"+kernelName(huge), func(b *testing.B) {
			var x Baseline
			for b.Loop() {
				x = kernelFault(size, huge)
			}
			reportBaseline(b, x, "ns/4KiB")
		})
		b.Run("kernel-fork/"+kernelName(huge), func(b *testing.B) {
			var x Baseline
			for b.Loop() {
				x = kernelFork(size, huge)
			}
			reportBaseline(b, x, "ns/fork")
		})
	}
	b.Run("kernel-cow", func(b *testing.B) {
		var x Baseline
		for b.Loop() {
			x = kernelCOW(size)
		}
		reportBaseline(b, x, "ns/4KiB")
	})
}

func reportBaseline(b *testing.B, x Baseline, unit string) {
	if !x.OK() {
		b.Skip("unavailable here: ", x.Err)
	}
	b.ReportMetric(x.Value, unit)
}

// BenchmarkKernel runs each workload on plain kernel memory: the time
// baseline of BenchmarkWorkload. It runs before BenchmarkWorkload makes its
// arena, whose page tables a fork() would otherwise copy too.
func BenchmarkKernel(b *testing.B) {
	cfg, base := benchSetup(b)
	for _, w := range Workloads() {
		for _, huge := range []bool{false, true} {
			b.Run(w.Name+"/"+kernelName(huge), func(b *testing.B) {
				var sum Result
				for b.Loop() {
					r := kernelOnce(cfg, w, huge)
					if r.Err != "" {
						b.Skip("unavailable here: ", r.Err)
					}
					accumulate(&sum, r)
				}
				report(b, cfg, base, sum)
			})
		}
	}
}

// benchPolicies are the policies benchmarked: the base page, contpte, PMD,
// the default set and all orders; folio COW where the workload forks.
var benchPolicies = []string{"4KiB", "64KiB", "2MiB", "default", "all"}

// BenchmarkWorkload runs each workload under the main policies on a
// populated arena and reports, per run: ns per 4 KiB faulted in with its
// ratios to the kernel's first-touch fault and to memclr of 4 KiB blocks,
// ns per fault, the
// faults, MB/s of the whole workload (if it writes all of its memory), the
// bloat, and for fork churn the
// Fork latency and the COW cost per page with their ratios to the kernel.
func BenchmarkWorkload(b *testing.B) {
	cfg, base := benchSetup(b)
	a, err := folio.NewArena(folio.Config{Size: 2*cfg.Size + arenaSlack, Populate: true, RetainFree: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	for _, w := range Workloads() {
		for _, p := range policies(a.Geometry(), benchPolicies, nil, w.Forks) {
			b.Run(w.Name+"/"+p.Name, func(b *testing.B) {
				var sum Result
				for b.Loop() {
					r, err := runOnSpace(cfg, a, w, p, nil)
					if err != nil {
						b.Fatal(err)
					}
					accumulate(&sum, r)
				}
				report(b, cfg, base, sum)
			})
		}
	}
}

// accumulate adds r's times and counts to sum (whose Reps counts runs).
func accumulate(sum *Result, r Result) {
	sum.Reps++
	sum.Workload, sum.Policy, sum.Kernel = r.Workload, r.Policy, r.Kernel
	sum.WallNs += r.WallNs
	sum.FaultPhaseNs += r.FaultPhaseNs
	sum.FaultBytes += r.FaultBytes
	sum.Faults += r.Faults
	sum.KernelFaults += r.KernelFaults
	sum.Ops += r.Ops
	sum.Bloat += r.Bloat
	sum.ForkP50Ns += r.ForkP50Ns
	sum.ForkP99Ns += r.ForkP99Ns
	sum.CowNsPerPage += r.CowNsPerPage
	sum.WPCopy += r.WPCopy
}

func report(b *testing.B, cfg *Config, base *Baselines, sum Result) {
	n := float64(sum.Reps)
	wall := time.Duration(float64(sum.WallNs) / n)
	if sum.FaultBytes == int64(sum.Reps)*cfg.Size { // it wrote all of the memory
		b.ReportMetric(float64(cfg.Size)/1e6/wall.Seconds(), "MB/s")
	}
	b.ReportMetric(float64(sum.Ops)/n/wall.Seconds(), "ops/s")
	if sum.FaultBytes > 0 {
		per4K := float64(sum.FaultPhaseNs) / (float64(sum.FaultBytes) / 4096)
		b.ReportMetric(per4K, "ns/4KiB")
		if base.KernelFault.OK() {
			b.ReportMetric(per4K/base.KernelFault.Value, "ratio-to-kernel")
		}
		if clr := base.memclrFor(4096); clr.OK() {
			b.ReportMetric(per4K/clr.Value, "ratio-to-memclr")
		}
	}
	if sum.Faults > 0 {
		b.ReportMetric(float64(sum.FaultPhaseNs)/float64(sum.Faults), "ns/fault")
		b.ReportMetric(float64(sum.Faults)/n, "faults")
	}
	if sum.Kernel {
		b.ReportMetric(float64(sum.KernelFaults)/n, "minflt")
	}
	b.ReportMetric(sum.Bloat/n, "bloat")
	if sum.ForkP50Ns > 0 {
		b.ReportMetric(sum.ForkP50Ns/n/1e3, "us/fork-p50")
		b.ReportMetric(sum.ForkP99Ns/n/1e3, "us/fork-p99")
		if !sum.Kernel && base.KernelFork.OK() {
			b.ReportMetric(sum.ForkP50Ns/n/base.KernelFork.Value, "fork-ratio-to-kernel")
		}
	}
	if sum.CowNsPerPage > 0 {
		b.ReportMetric(sum.CowNsPerPage/n, "cow-ns/page")
		if base.KernelCOW.OK() {
			b.ReportMetric(sum.CowNsPerPage/n/base.KernelCOW.Value, "cow-ratio-to-kernel")
		}
	}
}
