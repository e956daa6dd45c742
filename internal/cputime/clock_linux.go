package cputime

import "golang.org/x/sys/unix"

func threadClock() (float64, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0, false
	}
	return float64(ts.Nano()), true
}
