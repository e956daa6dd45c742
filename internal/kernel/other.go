//go:build !linux

package kernel

import (
	"errors"
	"time"
)

// ErrUnsupported: the kernel baselines are measured on Linux only.
var ErrUnsupported = errors.New("kernel baselines need Linux")

// Fork is unsupported off Linux.
func Fork() (time.Duration, error) { return 0, ErrUnsupported }

// ForkHeld is unsupported off Linux.
func ForkHeld(func()) error { return ErrUnsupported }

// Mapping is unsupported off Linux.
type Mapping struct{ B []byte }

// Map is unsupported off Linux.
func Map(int, bool) (*Mapping, error) { return nil, ErrUnsupported }

// Touch is unsupported off Linux.
func (m *Mapping) Touch() {}

// Drop is unsupported off Linux.
func (m *Mapping) Drop() error { return ErrUnsupported }

// Unmap is unsupported off Linux.
func (m *Mapping) Unmap() error { return nil }
