//go:build race || invariants

package pin

// allocFree: race and invariants builds register every Pages they hold in
// a map (track_on.go), which allocates.
const allocFree = false
