//go:build race || invariants

package folio

// ExactLedger: in race and invariants builds the pin package counts every
// pin and plain reference it holds in the ledger, and releases them inside
// the ledger gate, so that cow.Check verifies each folio's refcount and
// pincount exactly (see ledger.go).
const ExactLedger = true
