package bench

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"

	"github.com/anonfolio/anonfolio/cow"
)

// A Region is the memory a custom workload runs on: Size bytes at Addr in
// Space, mapped read and write and empty (it reads zero), in a space of
// its own made with the policy's cow.Options. The workload may do anything
// a program does with a space (ReadAt, WriteAt, Fork, pin.Pin, more Maps),
// but Addr must still be mapped when it returns: Run reads the region
// back to count the pages touched and to digest what it holds.
type Region struct {
	Space *cow.Space
	Addr  cow.Addr
	Size  int64
	// Rand is seeded from Config.Seed and starts afresh for every run: a
	// workload that draws its addresses and values from it does the same
	// work under every policy, which the digest shows.
	Rand *rand.Rand

	ops    int64
	digest uint64
}

// Op counts n operations of the workload (for its ops/s).
func (r *Region) Op(n int64) { r.ops += n }

// Mix folds v into the workload's digest. Mix the values the workload
// reads back: Run adds a hash of the region's final contents, and every
// policy must end with the same digest (Result.Digest) for the same seed.
func (r *Region) Mix(v uint64) { r.digest = mix(r.digest, v) }

// workload returns the built-in or custom workload called name, or nil.
func (c *Config) workload(name string) *Workload {
	if w := workloadByName(name); w != nil {
		return w
	}
	for i := range c.Custom {
		if c.Custom[i].Name == name {
			return &c.Custom[i]
		}
	}
	return nil
}

// selected returns the workloads to run: those named in c.Workloads (nil:
// every built-in one, then every custom one), in the order they are
// listed in Workloads and Custom.
func (c *Config) selected() []Workload {
	var ws []Workload
	for _, w := range append(slices.Clip(workloads), c.Custom...) {
		if c.Workloads == nil || slices.Contains(c.Workloads, w.Name) {
			ws = append(ws, w)
		}
	}
	return ws
}

// sizeOf is the memory workload w works on.
func (c *Config) sizeOf(w Workload) int64 {
	if w.Size != 0 {
		return w.Size
	}
	return c.Size
}

// checkCustom checks each custom workload: a name of its own, a Func, a
// size that is a positive multiple of 2 MiB.
func (c *Config) checkCustom() error {
	seen := map[string]bool{}
	for _, w := range c.Custom {
		switch {
		case w.Name == "":
			return fmt.Errorf("%w: a custom workload has no name", ErrInvalid)
		case w.Func == nil:
			return fmt.Errorf("%w: custom workload %q has no Func", ErrInvalid, w.Name)
		case workloadByName(w.Name) != nil || seen[w.Name]:
			return fmt.Errorf("%w: custom workload %q: the name is taken", ErrInvalid, w.Name)
		case w.Size < 0 || w.Size%sizeAlign != 0:
			return fmt.Errorf("%w: custom workload %q: size %d is not a positive multiple of 2 MiB", ErrInvalid, w.Name, w.Size)
		}
		seen[w.Name] = true
	}
	return nil
}

// runCustom runs custom workload w once on the region at addr of s, which
// wr describes.
func runCustom(wr *run, s *cow.Space, addr cow.Addr, w Workload) error {
	r := &Region{Space: s, Addr: addr, Size: wr.size, Rand: wr.rng, digest: fnvOffset}
	if err := w.Func(r); err != nil {
		return err
	}
	wr.ops = r.ops
	wr.digest = r.digest
	return nil
}

// readBack reads a custom workload's region after it ran: a page that
// holds a non-zero byte counts as touched (a page written with zeros
// counts as untouched), and its contents go into the returned digest.
func (w *run) readBack() (uint64, error) {
	chunk := max(fillChunk, w.page)
	buf := make([]byte, chunk)
	zero := make([]byte, w.page)
	d := uint64(fnvOffset)
	for off := int64(0); off < w.size; off += int64(chunk) {
		b := buf[:min(int64(chunk), w.size-off)]
		if _, err := w.mem.ReadAt(b, off); err != nil {
			return 0, fmt.Errorf("reading the region back at %#x: %w", off, err)
		}
		for i := 0; i < len(b); i += w.page {
			page := b[i:min(i+w.page, len(b))]
			if bytes.Equal(page, zero[:len(page)]) {
				continue
			}
			at := off + int64(i)
			w.touch(at, len(page))
			d = mix(d, uint64(at))
			d = mix(d, uint64(crc32.Checksum(page, castagnoli)))
		}
	}
	return d, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
