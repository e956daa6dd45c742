//go:build !linux

package membarrier

func register() bool { return false }

func barrier() {}
