// Package cputime measures the CPU time of the calling thread, for
// benchmarks on a shared machine: unlike the wall clock, it leaves out the
// time other processes hold the CPU.
package cputime

import (
	"runtime"
	"time"
)

// PerOp runs f(n) on a thread of its own and returns the thread's CPU time
// per operation, in ns.
func PerOp(n int, f func(n int)) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t := Thread()
	f(n)
	return (Thread() - t) / float64(n)
}

var start = time.Now()

// Thread returns the CPU time of the calling thread, in ns (the caller has
// locked its goroutine to the thread). Where there is no thread clock it
// falls back to the wall clock.
func Thread() float64 {
	if ns, ok := threadClock(); ok {
		return ns
	}
	return float64(time.Since(start).Nanoseconds())
}
