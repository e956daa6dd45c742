package cow_test

import (
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// A snapshot with Fork: the parent goes on writing, the child keeps what
// was there at the Fork.
func Example() {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, _ := cow.NewSpace(a, cow.Options{})
	defer s.Close()

	addr, _ := s.Map(16<<20, cow.ProtRead|cow.ProtWrite)
	s.WriteAt([]byte("hello"), int64(addr))
	snap, _ := s.Fork()                     // a COW snapshot, in microseconds
	s.WriteAt([]byte("HELLO"), int64(addr)) // the parent goes on writing

	buf := make([]byte, 5)
	snap.ReadAt(buf, int64(addr))
	fmt.Printf("snapshot %q, ", buf)
	s.ReadAt(buf, int64(addr))
	fmt.Printf("parent %q\n", buf)
	snap.Close()
	// Output: snapshot "hello", parent "HELLO"
}
