package conformance

import (
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// fuzzMaxOps bounds the operations of one fuzz input (a quarter with
// -short).
const fuzzMaxOps = 2000

// FuzzDiff is TestDiff over operation strings the fuzzer writes: the first
// byte chooses the folio configuration, the page size and the COW copy
// unit, the rest are
// operations in the encoding of diff_ops_test.go. The seed corpus is in
// testdata/fuzz/FuzzDiff.
func FuzzDiff(f *testing.F) {
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		n := len(spacetest.Configs)
		c := spacetest.Configs[int(b[0])%n]
		p := pageSetups[int(b[0])/n%len(pageSetups)]
		o, ok := orders(c, p.geometry(t))
		if !ok {
			p = pageSetups[0] // the configuration needs the PMD order of 4 KiB pages
			o, _ = orders(c, p.geometry(t))
		}
		opts := cow.Options{Orders: o}
		if int(b[0])/n/len(pageSetups)%2 == 1 {
			opts.CopyUnit = cow.CopyFolio
		}
		d := newDiffer(t, p.env(t, newDiffGeometry(p.geometry(t)).arenaBytes()), opts)
		limit := fuzzMaxOps
		if testing.Short() {
			limit /= 4
		}
		d.run(&decoder{b: b[1:]}, limit)
		d.finish()
	})
}
