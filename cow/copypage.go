//go:build !race

package cow

// copyPage copies pages for a COW fault or a fork. The source may be written
// while it is read: in wp_page_copy another goroutine may reuse the old page
// (this space's in-flight copies do not stop a reuse) and write it; at fork
// a pinned page may be written through its pin. Such a copy is either
// discarded by the pte_same check or, for the pinned page, is what fork of a
// page under DMA gives. The race is benign by design; this is the only
// unsynchronised access to page contents in the library. Without the race
// detector it is a plain memmove; copypage_race.go keeps it invisible to
// -race.
func copyPage(dst, src []byte) { copy(dst, src) }
