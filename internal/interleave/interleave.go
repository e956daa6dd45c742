// Package interleave explores the interleavings of operations that may race,
// for the windows no test hook reaches: it runs each operation in a loop on
// its own goroutine under GOMAXPROCS(1) for a bounded time. With one P, a
// goroutine runs until the runtime's asynchronous preemption stops it at an
// arbitrary instruction (sysmon's 10 ms time slice, or a GC), and the other
// operations then run many times over while its window is held open: a pin
// stopped between its grab and its count, a Check between two spaces. A
// window that is a few instructions wide on two CPUs becomes milliseconds
// wide here, and a few seconds of this found two bugs that stress on every
// CPU and the hooks missed.
//
// Tests only. The time each Run explores is the -interleave.time flag
// (default 300 ms, 100 ms with -short); set it to minutes for a long run.
package interleave

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var runTime = flag.Duration("interleave.time", 0,
	"how long each interleaving run explores (0: 300ms, 100ms with -short)")

// Op is one operation of a run: Step does one iteration of it and returns
// an error if it saw a broken invariant, which fails the test. Steps of one
// Op never run concurrently with each other; steps of different Ops
// interleave.
type Op struct {
	Name string
	Step func(rng *rand.Rand) error
}

// Report says how much a run explored: per Op, the steps it ran and how
// many of them another Op's step interrupted (began while it was under
// way, which on one P means it was preempted or blocked mid-step).
type Report struct {
	Names       []string
	Steps       []int64
	Interrupted []int64
}

func (r Report) String() string {
	s := ""
	for i, n := range r.Names {
		s += fmt.Sprintf(" %s: %d steps, %d interrupted;", n, r.Steps[i], r.Interrupted[i])
	}
	return s
}

// Duration returns how long a Run explores: the -interleave.time flag, or
// its default.
func Duration() time.Duration {
	switch {
	case *runTime > 0:
		return *runTime
	case testing.Short():
		return 100 * time.Millisecond
	}
	return 300 * time.Millisecond
}

// Run runs ops together under GOMAXPROCS(1) for Duration (d if d > 0),
// each Step in a loop with its own seeded generator, and fails t with the
// first error a Step returns (naming the Op and the step). It also fails if
// an Op never ran or if no step was ever interrupted: such a run explored
// nothing. It restores GOMAXPROCS when it returns; do not use it from
// parallel tests.
func Run(t testing.TB, d time.Duration, seed uint64, ops ...Op) Report {
	t.Helper()
	if d <= 0 {
		d = Duration()
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)

	var (
		epoch   atomic.Int64 // bumped at the start of every step
		stop    atomic.Bool
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	rep := Report{Steps: make([]int64, len(ops)), Interrupted: make([]int64, len(ops))}
	for i, op := range ops {
		rep.Names = append(rep.Names, op.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for !stop.Load() {
				e := epoch.Add(1)
				if err := op.Step(rng); err != nil {
					errOnce.Do(func() {
						first = fmt.Errorf("%s, step %d: %w", op.Name, rep.Steps[i], err)
					})
					stop.Store(true)
					return
				}
				rep.Steps[i]++
				if epoch.Load() != e {
					rep.Interrupted[i]++
				}
			}
		}()
	}
	time.Sleep(d) // the sleeping goroutine wakes on a preemption or a blocked Op
	stop.Store(true)
	wg.Wait()
	if first != nil {
		t.Fatalf("interleave: %v\n(seed %d;%v)", first, seed, rep)
	}
	var interrupted int64
	for i := range ops {
		if rep.Steps[i] == 0 {
			t.Fatalf("interleave: %s never ran a step in %v:%v", ops[i].Name, d, rep)
		}
		interrupted += rep.Interrupted[i]
	}
	if interrupted == 0 && len(ops) > 1 {
		t.Fatalf("interleave: no step was ever interrupted in %v: nothing was explored:%v", d, rep)
	}
	t.Logf("interleave %v:%v", d, rep)
	return rep
}
