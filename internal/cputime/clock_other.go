//go:build !linux

package cputime

func threadClock() (float64, bool) { return 0, false }
