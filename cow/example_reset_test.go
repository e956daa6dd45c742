package cow_test

import (
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// The loop of a snapshot fuzzer or a per-request sandbox: build a state
// once, fork it, and after each run reset the space to the fork. Each
// ResetTo costs what the run changed, not the size of the space.
func ExampleSpace_ResetTo() {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	heap, err := s.Map(16<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("pristine state"), int64(heap)); err != nil { // the state every run starts from
		log.Fatal(err)
	}

	pristine, err := s.Fork()
	if err != nil {
		log.Fatal(err)
	}
	defer pristine.Close()
	for _, input := range []string{"input 1", "input 2", "crash!"} {
		// The run scribbles over the state and maps more memory...
		if _, err := s.WriteAt([]byte(input), int64(heap)); err != nil {
			log.Fatal(err)
		}
		if _, err := s.Map(1<<20, cow.ProtRead); err != nil {
			log.Fatal(err)
		}
		if err := s.ResetTo(pristine); err != nil { // ...which ResetTo takes back
			log.Fatal(err)
		}
		buf := make([]byte, 14)
		if _, err := s.ReadAt(buf, int64(heap)); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("after %q: %q, %d region(s)\n", input, buf, len(s.Regions()))
	}
	// Output:
	// after "input 1": "pristine state", 1 region(s)
	// after "input 2": "pristine state", 1 region(s)
	// after "crash!": "pristine state", 1 region(s)
}
