//go:build !anonfolio_debug

package folio

// debugPagealloc is set by the anonfolio_debug build tag: see debugalloc.go.
const debugPagealloc = false
