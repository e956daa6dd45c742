//go:build anonfolio_debug

package cow

// debugRefReads is set by the anonfolio_debug build tag: seqlock reads take
// a reference on the page, because the debug build makes freed pages that
// pins held inaccessible (folio's quarantine), and a seqlock read of a page
// freed under it would fault instead of being thrown away.
const debugRefReads = true
