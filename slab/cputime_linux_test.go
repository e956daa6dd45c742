package slab

import "golang.org/x/sys/unix"

// threadCPU returns the CPU time of the calling thread, in ns (the caller
// has locked its goroutine to the thread). On a shared machine it leaves
// out the time other processes hold the CPU.
func threadCPU() float64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return float64(ts.Nano())
}
