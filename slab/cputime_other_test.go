//go:build !linux

package slab

import "time"

var start = time.Now()

// threadCPU falls back to the wall clock where there is no thread clock.
func threadCPU() float64 { return float64(time.Since(start).Nanoseconds()) }
