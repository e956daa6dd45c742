// Command sandbox runs the loop of a snapshot fuzzer (or of a per-request
// sandbox) on a cow.Space: build a state once, fork it, and for each input
// run the target on the state and reset the space to the fork. It then
// shows package snapshot: the pristine state saved once as a full image,
// the state a crashing input left saved as a delta against it (only the
// pages that input wrote), and both loaded into a fresh space that
// reproduces the crash exactly.
//
//	go run ./examples/sandbox
//	go run ./examples/sandbox -size 1024 -runs 2000
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/snapshot"
)

func main() {
	sizeMiB := flag.Int("size", 256, "MiB of state the target starts from")
	runs := flag.Int("runs", 1000, "inputs to run")
	flag.Parse()
	size := *sizeMiB << 20

	a, err := folio.NewArena(folio.Config{Size: int64(size)*3 + 64<<20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{Orders: cow.Orders()}) // order-0: a delta is exact to the page
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// The pristine state: a table of records the target reads and updates.
	heap, err := s.Map(size, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	record := make([]byte, 4096)
	for off := 0; off < size; off += len(record) {
		binary.LittleEndian.PutUint64(record, uint64(off))
		s.WriteAt(record, int64(heap)+int64(off))
	}
	var full bytes.Buffer // a file in practice
	if _, err := snapshot.Save(&full, s, snapshot.Options{}); err != nil {
		log.Fatal(err)
	}
	pristine, err := s.Fork()
	if err != nil {
		log.Fatal(err)
	}
	defer pristine.Close()
	fmt.Printf("state: %d MiB in %d regions, full image %d MiB\n", *sizeMiB, len(s.Regions()), full.Len()>>20)

	// The loop: run, reset, run...
	rng := rand.New(rand.NewPCG(1, 2))
	pages := size / 4096
	var resets []time.Duration
	var crash []byte // the delta of the first crashing run
	var crashInput uint64
	for i := range *runs {
		input := rng.Uint64()
		if target(s, heap, pages, input) && crash == nil {
			var delta bytes.Buffer
			info, err := snapshot.Save(&delta, s, snapshot.Options{Delta: true})
			if err != nil {
				log.Fatal(err)
			}
			crash, crashInput = delta.Bytes(), input
			fmt.Printf("run %d: input %#x crashed the target; its delta holds %d pages (%d KiB)\n", i, input, info.Pages, len(crash)>>10)
		}
		start := time.Now()
		if err := s.ResetTo(pristine); err != nil {
			log.Fatal(err)
		}
		resets = append(resets, time.Since(start))
	}
	slices.Sort(resets)
	var sum time.Duration
	for _, d := range resets {
		sum += d
	}
	fmt.Printf("%d runs: ResetTo median %v, p99 %v, mean %v (a copy of the state would move %d MiB each time)\n",
		len(resets), resets[len(resets)/2], resets[len(resets)*99/100], sum/time.Duration(len(resets)), *sizeMiB)

	// Reproduce the crash elsewhere: the full image, then the crash's delta.
	if crash == nil {
		return
	}
	replay, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer replay.Close()
	if _, err := snapshot.Load(&full, replay); err != nil {
		log.Fatal(err)
	}
	if _, err := snapshot.Load(bytes.NewReader(crash), replay); err != nil {
		log.Fatal(err)
	}
	target(s, heap, pages, crashInput) // the crash again, in s, for the comparison
	same := true
	a1, a2 := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := 0; off < size; off += len(a1) {
		s.ReadAt(a1, int64(heap)+int64(off))
		replay.ReadAt(a2, int64(heap)+int64(off))
		same = same && bytes.Equal(a1, a2)
	}
	fmt.Printf("the replayed crash state equals the crashing run's: %v\n", same)
}

// target is the program under test: it updates a few records the input
// chooses, maps scratch memory, and "crashes" on one input in 128.
func target(s *cow.Space, heap cow.Addr, pages int, input uint64) (crashed bool) {
	rng := rand.New(rand.NewPCG(input, 0))
	var b [8]byte
	for range 1 + rng.IntN(32) {
		p := rng.IntN(pages)
		binary.LittleEndian.PutUint64(b[:], input)
		s.WriteAt(b[:], int64(heap)+int64(p)*4096+8)
	}
	if scratch, err := s.Map(1<<20, cow.ProtRead|cow.ProtWrite); err == nil {
		s.WriteAt(b[:], int64(scratch))
	}
	return input%128 == 0
}
