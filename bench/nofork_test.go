package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestNoKernelFork: on a host where fork() fails (qemu-user may refuse the
// raw clone), the kernel's fork and COW baselines and the kernel rows of
// fork churn are reported unavailable, with no ratio to them, and the rest
// of the run goes on.
func TestNoKernelFork(t *testing.T) {
	errNoFork := errors.New("clone: function not implemented")
	fork, held := kernelFork1, kernelForkHeld
	kernelFork1 = func() (time.Duration, error) { return 0, errNoFork }
	kernelForkHeld = func(func()) error { return errNoFork }
	defer func() { kernelFork1, kernelForkHeld = fork, held }()

	rep, err := Run(Config{Size: testSize, MinReps: 1, ForkRounds: 2, Workloads: []string{"seqfill", "forkchurn"}, Policies: []string{"4KiB", "2MiB"}})
	if err != nil {
		t.Fatal(err)
	}
	b := rep.Baselines
	for name, x := range map[string]Baseline{"fork": b.KernelFork, "fork THP": b.KernelForkTHP, "COW": b.KernelCOW} {
		if x.OK() || !strings.Contains(x.Err, errNoFork.Error()) {
			t.Errorf("kernel %s baseline %+v, want unavailable", name, x)
		}
	}
	if !b.KernelFault.OK() {
		t.Errorf("the fault baseline needs no fork, yet: %+v", b.KernelFault)
	}
	ours := 0
	for _, r := range rep.Results {
		switch {
		case r.Kernel && r.Workload == "forkchurn":
			if r.Err == "" {
				t.Errorf("%s/%s ran without fork()", r.Workload, r.Policy)
			}
		case r.Err != "":
			t.Errorf("%s/%s failed: %s", r.Workload, r.Policy, r.Err)
		case r.Workload == "forkchurn" && !r.Kernel:
			ours++
			if r.Forks != 2 || r.ForkVsKernel != 0 || r.CowVsKernel != 0 || r.TimeVsKernel != 0 || r.CowVsMemmove == 0 {
				t.Errorf("%s/%s: %d forks, ratios to an unavailable kernel %v %v %v, to memmove %v",
					r.Workload, r.Policy, r.Forks, r.ForkVsKernel, r.CowVsKernel, r.TimeVsKernel, r.CowVsMemmove)
			}
		}
	}
	if ours != 4 {
		t.Errorf("%d fork-churn results of ours, want 4", ours)
	}
	var tab bytes.Buffer
	rep.WriteTable(&tab)
	if !strings.Contains(tab.String(), "unavailable: fork() unavailable here") {
		t.Errorf("the table does not say the kernel's fork is unavailable:\n%s", tab.String())
	}
	if _, err := rep.WritePlots(t.TempDir()); err != nil {
		t.Errorf("charts without the kernel's fork: %v", err)
	}
}
