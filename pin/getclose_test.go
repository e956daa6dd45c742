package pin

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// TestGetBeforeForkOneSideCloses is cow.c's "vmsplice() before fork(), unmap
// in parent", with exit in place of munmap, in both directions. A Get taken
// before a Fork holds the page as it was at the Fork: on-demand fork shares
// the leaf without write-protecting it, and when one side closes the leaf
// goes back to the other alone; its next write must copy (the reference
// outnumbers the mappings), not land in place under the Get.
func TestGetBeforeForkOneSideCloses(t *testing.T) {
	for _, cfg := range spacetest.Configs {
		for _, closer := range []string{"parent", "child"} {
			t.Run(fmt.Sprintf("%s/%s closes", cfg.Name, closer), func(t *testing.T) {
				e := spacetest.New(t, 32<<20, page)
				s := e.Space(cow.Options{Orders: cfg.Orders(e.A.Geometry())})
				const size = 2 << 20
				addr := e.Map(s, size, cow.ProtRead|cow.ProtWrite)
				before := spacetest.Pattern('a', size, page)
				e.Write(s, addr, before)
				g, err := Get(s, addr, size, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Release()
				c := e.Fork(s)
				gone, writer := s, c
				if closer == "child" {
					gone, writer = c, s
				}
				if err := gone.Close(); err != nil {
					t.Fatal(err)
				}
				e.Write(writer, addr, spacetest.Pattern('A', size, page))
				if got := spacetest.Join(g.Bytes()); !bytes.Equal(got, before) {
					i := 0
					for got[i] == before[i] {
						i++
					}
					t.Fatalf("the Get reads %q at byte %d, written by the %s after the Fork; want %q",
						got[i:i+1], i, map[bool]string{true: "child", false: "parent"}[writer == c], before[i:i+1])
				}
				e.Check()
			})
		}
	}
}
