//go:build !anonfolio_debug

package cow

// debugRefReads is set by the anonfolio_debug build tag (see debug_on.go).
const debugRefReads = false
