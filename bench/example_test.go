package bench_test

import (
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/bench"
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
