//go:build !anonfolio_debug

package sections

// debugStuck: without the anonfolio_debug tag, waits never give up (see
// debug_on.go).
const debugStuck = 0
