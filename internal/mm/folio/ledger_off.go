//go:build !race && !invariants

package folio

// ExactLedger: in the default build the pin package does not count the
// pins and plain references it holds on folios in the ledger, nor release
// them inside the ledger gate: those three atomics would cost a pin and
// release more than the two the pin itself takes (see ledger.go). Plain
// references to the zero page are still counted.
const ExactLedger = false
