//go:build !race

package cow

import "github.com/anonfolio/anonfolio/internal/pagecopy"

// copyPage copies pages for a COW fault or a fork, keeping the line at byte
// hot of dst in the cache for the write that follows (hot < 0: none; see
// internal/pagecopy for why the rest bypasses it).
//
// The source may be written while it is read: in wp_page_copy another
// goroutine may reuse the old page (this space's in-flight copies do not
// stop a reuse) and write it; at fork a pinned page may be written through
// its pin. Such a copy is either discarded by the pte_same check or, for
// the pinned page, is what fork of a page under DMA gives. The race is
// benign by design; this is the only unsynchronised access to page contents
// in the library. copypage_race.go keeps it invisible to -race.
func copyPage(dst, src []byte, hot int) { pagecopy.Copy(dst, src, hot) }
