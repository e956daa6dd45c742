//go:build !unix

package bench

// minorFaults is unknown off Unix.
func minorFaults() int64 { return 0 }
