package bench

import (
	"io"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/kernel"
	"github.com/anonfolio/anonfolio/pin"
)

// memory is what a workload runs on: a space of ours, or plain kernel
// memory for the baseline rows. Offsets are from the start of the region.
type memory interface {
	io.ReaderAt
	io.WriterAt
	// forkRound forks, runs body while the child holds a snapshot of the
	// memory (body may stream the child out through its argument), then
	// ends the child. It returns the Fork latency.
	forkRound(body func(child io.ReaderAt) error) (time.Duration, error)
	// pin pins [off, off+n) for reading and returns its memory and the
	// release.
	pin(off int64, n int) ([][]byte, func(), error)
}

// spaceMemory is a region of a space.
type spaceMemory struct {
	s    *cow.Space
	base cow.Addr
}

func (m spaceMemory) ReadAt(p []byte, off int64) (int, error) {
	return m.s.ReadAt(p, int64(m.base)+off)
}

func (m spaceMemory) WriteAt(p []byte, off int64) (int, error) {
	return m.s.WriteAt(p, int64(m.base)+off)
}

func (m spaceMemory) forkRound(body func(child io.ReaderAt) error) (time.Duration, error) {
	start := time.Now()
	c, err := m.s.Fork()
	lat := time.Since(start)
	if err != nil {
		return 0, err
	}
	err = body(spaceMemory{c, m.base})
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return lat, err
}

func (m spaceMemory) pin(off int64, n int) ([][]byte, func(), error) {
	p, err := pin.Pin(m.s, m.base+cow.Addr(off), n, 0)
	if err != nil {
		return nil, nil, err
	}
	return p.Bytes(), p.Release, nil
}

// kernelMemory is a plain private anonymous mapping. Its Fork is the
// kernel's fork() of this process with a child that holds the pages until
// the round ends; the round streams the parent's own memory in the child's
// place (the child cannot run Go code), which reads as many bytes.
type kernelMemory struct{ m *kernel.Mapping }

func (k kernelMemory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(k.m.B)) {
		return 0, io.EOF
	}
	n := copy(p, k.m.B[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (k kernelMemory) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(k.m.B)) {
		return 0, io.ErrShortWrite
	}
	return copy(k.m.B[off:], p), nil
}

func (k kernelMemory) forkRound(body func(child io.ReaderAt) error) (time.Duration, error) {
	var lat time.Duration
	var berr error
	start := time.Now()
	err := kernelForkHeld(func() {
		lat = time.Since(start) // the clone, plus a pipe and two sigprocmasks
		berr = body(k)
	})
	if err != nil {
		return 0, err
	}
	return lat, berr
}

func (k kernelMemory) pin(off int64, n int) ([][]byte, func(), error) {
	return [][]byte{k.m.B[off : off+int64(n)]}, func() {}, nil
}
