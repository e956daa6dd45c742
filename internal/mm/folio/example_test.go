package folio_test

import (
	"fmt"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// A 2 MiB folio from a fresh arena: naturally aligned, known zero (so
// nothing is cleared), refcounted, and given back whole.
func ExampleArena() {
	a, err := folio.NewArena(folio.Config{Size: 8 << 20, PageSize: 4096})
	if err != nil {
		panic(err)
	}
	defer a.Close()

	pfn, _ := a.AllocFolio(9, folio.AllocZero)
	b := a.PageBytes(pfn, 512)
	b[4096] = 42 // write to the second page

	head, order, _ := a.PageFolio(pfn + 1)
	fmt.Println("folio of page 1:", head == pfn, "order", order, "refcount", a.FolioRef(pfn))

	a.FolioPut(pfn, 1) // the last reference frees it
	st := a.Stats()
	fmt.Println("free:", st.FreePages, "of", st.TotalPages, "zeroed bytes:", st.BytesZeroed)
	// Output:
	// folio of page 1: true order 9 refcount 1
	// free: 2048 of 2048 zeroed bytes: 0
}
