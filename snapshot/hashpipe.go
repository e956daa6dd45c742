package snapshot

import (
	"sync"

	"github.com/zeebo/xxh3"
)

// hashPipe checks the sums of large pages records on another goroutine
// while the decoder reads on: on a machine with a spare core a Load then
// costs the copy from the reader, not the copy and the hash. A record's sum
// depends only on the record and the sum stored before it, so each one is
// checked on its own; the decoder goes on from the stored sum, and waits
// for the pipe (wait) before anything that trusts what it read: the end
// record, and any return, since the pipe reads the pages of the Load's
// Fork until then.
type hashPipe struct {
	jobs chan hashJob
	wg   sync.WaitGroup
	err  error // the first mismatch; written by the worker, read after wait
}

// hashJob is one record to check: its header, its payload, the sum stored
// before it and its own.
type hashJob struct {
	record     uint64
	hdr        [recHeaderSize]byte
	parts      [][]byte
	prev, want uint64
}

// asyncMin is the smallest payload worth handing to the pipe: below it the
// hand-over costs more than the hash.
const asyncMin = 64 << 10

func newHashPipe() *hashPipe {
	p := &hashPipe{jobs: make(chan hashJob, 4)}
	p.wg.Add(1)
	go p.run()
	return p
}

func (p *hashPipe) run() {
	defer p.wg.Done()
	h := xxh3.New()
	for j := range p.jobs {
		if p.err != nil {
			continue
		}
		h.Reset()
		for _, b := range j.parts {
			h.Write(b)
		}
		if got := recordSum(j.prev, j.hdr[:], h.Sum64()); got != j.want {
			p.err = corrupt("record %d (%q): checksum %#x, its bytes hash to %#x", j.record, j.hdr[0], j.want, got)
		}
	}
}

// wait waits for every record handed over and returns the first mismatch.
// The pipe is done afterwards.
func (p *hashPipe) wait() error {
	if p.jobs != nil {
		close(p.jobs)
		p.wg.Wait()
		p.jobs = nil
	}
	return p.err
}
