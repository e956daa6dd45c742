//go:build anonfolio_debug

package sections

// debugStuck is how long the anonfolio_debug build lets a wait for
// sections spin before it panics: a section that lasts that long is a
// View callback calling into its own space, which waits for itself.
const debugStuck = 10e9
