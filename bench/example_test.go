package bench_test

import (
	"encoding/binary"
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/bench"
	"github.com/anonfolio/anonfolio/cow"
)

// Which order should a workload that writes one word every 64 KiB use?
// Every order above 16 KiB brings in memory it never touches.
func ExampleRun() {
	rep, err := bench.Run(bench.Config{
		Size:        16 << 20,
		Workloads:   []string{"sparse"},
		Policies:    []string{"4KiB", "64KiB", "2MiB"},
		NoKernel:    true,
		NoForkScale: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rep.Results {
		fmt.Printf("%-5s resident %4d pages for %d touched\n", r.Policy, r.ResidentPages, r.TouchedPages)
	}
	fmt.Println("use", rep.Recommendations[0].Policy)
	// Output:
	// 4KiB  resident  256 pages for 256 touched
	// 64KiB resident 4096 pages for 256 touched
	// 2MiB  resident 4096 pages for 256 touched
	// use 4KiB
}

// A workload of your own: a hash table of 8-byte counters, each update a
// read of its slot, then a write. Run gives it a fresh space of Size bytes
// under each policy; draw from r.Rand so that every policy does the same
// work, and Mix what you read so that the digests show it. The first read
// of a page maps the shared zero page; the write that follows gets a folio
// of the policy's order over it (below the PMD order), so the 64 KiB policy
// brings in 16 pages per counter page touched, while 2 MiB, which a write
// to the zero page does not reach, copies the one page (the built-in rmw
// workload measures this). rep.Recommendations[0] has the policy to use and
// its cow.Options.
func ExampleWorkload() {
	counters := bench.Workload{
		Name: "counters",
		Size: 16 << 20,
		Func: func(r *bench.Region) error {
			var b [8]byte
			for range 2000 {
				slot := r.Addr + cow.Addr(r.Rand.Int64N(r.Size/8)*8)
				if _, err := r.Space.ReadAt(b[:], int64(slot)); err != nil {
					return err
				}
				v := binary.LittleEndian.Uint64(b[:]) + 1
				r.Mix(v)
				binary.LittleEndian.PutUint64(b[:], v)
				if _, err := r.Space.WriteAt(b[:], int64(slot)); err != nil {
					return err
				}
				r.Op(1)
			}
			return nil
		},
	}
	rep, err := bench.Run(bench.Config{
		Size:        16 << 20, // the baselines' size
		Custom:      []bench.Workload{counters},
		Workloads:   []string{"counters"},
		Policies:    []string{"4KiB", "64KiB", "2MiB"},
		NoForkScale: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	same := true
	for _, r := range rep.Results {
		fmt.Printf("%-5s resident %4d pages for %d touched\n", r.Policy, r.ResidentPages, r.TouchedPages)
		same = same && r.Digest == rep.Results[0].Digest
	}
	fmt.Println("the same work under every policy:", same)
	// Output:
	// 4KiB  resident 1566 pages for 1566 touched
	// 64KiB resident 4096 pages for 1566 touched
	// 2MiB  resident 1566 pages for 1566 touched
	// the same work under every policy: true
}
