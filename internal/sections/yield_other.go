//go:build !linux

package sections

// osYield gives up the CPU where the platform offers no cheap way to: the
// runtime.Gosched before it is all there is.
func osYield() {}
