//go:build !race && !invariants

package pin

// Without the race or invariants build tag live Pages are not registered:
// Check verifies the pin totals through the arena's ledger only.

func track(*Pages)   {}
func untrack(*Pages) {}
