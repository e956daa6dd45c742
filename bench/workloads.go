package bench

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

var workloads = []Workload{
	{
		Name: "seqfill",
		Doc:  "sequential fill: every byte written once, 64 KiB per WriteAt; an op is a 4 KiB page",
		run:  seqFill,
	},
	{
		Name: "sparse",
		Doc:  "sparse touch: one 8-byte write every SparseStride bytes, the large-order worst case; an op is a write",
		run:  sparseTouch,
	},
	{
		Name: "random",
		Doc:  "random 8-byte writes, one per 512 bytes of memory on average; an op is a write",
		run:  randomWrites,
	},
	{
		Name: "rmw",
		Doc:  "read-modify-write, the hash-table pattern: read a random 8-byte slot, then write a value made from it, one per 512 bytes of memory on average, on memory that starts empty; an op is a slot read and written",
		run:  readModifyWrite,
	},
	{
		Name: "readscan",
		Doc:  "read-mostly scan: fill, then ScanPasses sequential passes of 64 KiB ReadAt with a random 8-byte write every 100 reads; an op is a read or a write",
		run:  readScan,
	},
	{
		Name:  "forkchurn",
		Doc:   "fork churn (the database case): fill, then ForkRounds times Fork, write WritePercent % of the pages at random while the child is streamed out by ReadAt, close the child; an op is a page written",
		Forks: true,
		run:   forkChurn,
	},
	{
		Name: "pinio",
		Doc:  "pinned I/O: every PinRange range in random order is written, pinned, written to a file and released; an op is a range",
		run:  pinnedIO,
	},
}

func seqFill(w *run) error {
	w.ops = w.size / 4096
	return w.fill()
}

func sparseTouch(w *run) error {
	start := time.Now()
	stride := int64(w.cfg.SparseStride)
	for off := int64(0); off+8 <= w.size; off += stride {
		if err := w.write8(off, w.rng.Uint64()); err != nil {
			return err
		}
		w.ops++
	}
	w.faultTime += time.Since(start)
	w.faultMem += w.ops * int64(w.page)
	return nil
}

func randomWrites(w *run) error {
	start := time.Now()
	n := w.size / 512
	for range n {
		if err := w.write8(w.rng.Int64N(w.size/8)*8, w.rng.Uint64()); err != nil {
			return err
		}
	}
	w.ops = n
	w.faultTime += time.Since(start)
	w.faultMem += w.touchedPages() * int64(w.page)
	return nil
}

// readModifyWrite reads a slot and writes it back changed, as a hash table
// updates a bucket: the first op on a page reads it before anything was
// written there (a read fault, which maps the zero page), the write then
// faults again to get a page of its own; later ops on the page hit it.
func readModifyWrite(w *run) error {
	start := time.Now()
	n := w.size / 512
	var b [8]byte
	for range n {
		off := w.rng.Int64N(w.size/8) * 8
		if _, err := w.mem.ReadAt(b[:], off); err != nil {
			return err
		}
		v := binary.LittleEndian.Uint64(b[:])
		w.mix(v) // what was read: the next write depends on it
		if err := w.write8(off, v+(w.rng.Uint64()|1)); err != nil {
			return err
		}
	}
	w.ops = n
	w.faultTime += time.Since(start)
	w.faultMem += w.touchedPages() * int64(w.page)
	return nil
}

func readScan(w *run) error {
	if err := w.fill(); err != nil {
		return err
	}
	for range w.cfg.ScanPasses {
		for off := int64(0); off < w.size; off += fillChunk {
			b := w.buf[:min(fillChunk, w.size-off)]
			if _, err := w.mem.ReadAt(b, off); err != nil {
				return err
			}
			w.mix(binary.LittleEndian.Uint64(b))
			w.ops++
			if w.ops%100 == 0 {
				if err := w.write8(w.rng.Int64N(w.size/8)*8, w.rng.Uint64()); err != nil {
					return err
				}
				w.ops++
			}
		}
	}
	return nil
}

func forkChurn(w *run) error {
	if err := w.fill(); err != nil {
		return err
	}
	pages := w.size / int64(w.page)
	writes := max(1, int64(float64(pages)*w.cfg.WritePercent/100))
	for range w.cfg.ForkRounds {
		lat, err := w.mem.forkRound(func(child io.ReaderAt) error {
			done := make(chan streamed, 1)
			go func() { done <- stream(child, w.size, w.page) }()
			start := time.Now()
			for range writes {
				p := w.rng.Int64N(pages)
				off := p*int64(w.page) + w.rng.Int64N(int64(w.page)/8)*8
				if err := w.write8(off, w.rng.Uint64()); err != nil {
					<-done
					return err
				}
			}
			w.cowTime += time.Since(start)
			w.cowPages += writes
			w.ops += writes
			s := <-done
			w.mix(s.digest)
			return s.err
		})
		if err != nil {
			return err
		}
		w.forkLat = append(w.forkLat, lat)
	}
	return nil
}

type streamed struct {
	digest uint64
	err    error
}

// stream reads the child out 1 MiB at a time, as a snapshot is saved, and
// digests the first 8 bytes of each page it read.
func stream(child io.ReaderAt, size int64, page int) streamed {
	buf := make([]byte, streamChunk)
	d := uint64(fnvOffset)
	for off := int64(0); off < size; off += streamChunk {
		b := buf[:min(streamChunk, size-off)]
		if _, err := child.ReadAt(b, off); err != nil {
			return streamed{err: fmt.Errorf("streaming the child at %#x: %w", off, err)}
		}
		for i := 0; i < len(b); i += page {
			d = mix(d, binary.LittleEndian.Uint64(b[i:]))
		}
	}
	return streamed{digest: d}
}

func pinnedIO(w *run) error {
	f, err := os.CreateTemp(w.cfg.TempDir, "orderbench-pinio-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rng := int64(w.cfg.PinRange)
	n := w.size / rng
	for i, r := range w.rng.Perm(int(n)) {
		off := int64(r) * rng
		start := time.Now()
		for o := int64(0); o < rng; o += fillChunk { // the application fills its buffer
			b := w.buf[:min(fillChunk, rng-o)]
			binary.LittleEndian.PutUint64(b, uint64(off+o)^uint64(i))
			if _, err := w.mem.WriteAt(b, off+o); err != nil {
				return err
			}
		}
		w.faultTime += time.Since(start)
		w.touch(off, int(rng))
		bufs, release, err := w.mem.pin(off, int(rng))
		if err != nil {
			return err
		}
		// The device reads the pinned memory: one slice per physically
		// contiguous run, which depends on the allocator, so only the
		// range's first word and length go into the digest.
		fo := off
		for _, b := range bufs {
			if _, err := f.WriteAt(b, fo); err != nil {
				release()
				return err
			}
			fo += int64(len(b))
		}
		w.mix(binary.LittleEndian.Uint64(bufs[0]))
		w.mix(uint64(fo - off))
		release()
		w.mix(uint64(off))
		w.ops++
	}
	w.faultMem += w.size
	return nil
}
