package conformance

import (
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// TestDiff drives the library and the reference model (internal/model)
// with the same random operations, for every page size and folio
// configuration, and compares every read, pin and error; cow.Check runs
// every few operations over every live space, and at the end every page
// must come back. -conformance.ops=N runs N operations in all (millions for
// a long run), -conformance.seed=S another sequence (0: from the clock).
func TestDiff(t *testing.T) {
	total := *diffOps
	if total == 0 {
		total = scale(120_000)
	}
	per := max(total/matrixSize(t), 1)
	seed := *diffSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("%d operations per configuration, seed %d", per, seed)
	ran := 0
	matrix(t, func(t *testing.T, p pageSetup, opts cow.Options) {
		// Half the operations with each COW copy unit: the page, as the
		// kernel copies, and the whole folio.
		for _, unit := range []cow.CopyUnit{cow.CopyPage, cow.CopyFolio} {
			opts.CopyUnit = unit
			t.Run(copyUnitName[unit], func(t *testing.T) {
				ran += runDiff(t, p, opts, seed, max(per/2, 1))
			})
		}
	})
	t.Logf("%d operations in all", ran)
}

var copyUnitName = map[cow.CopyUnit]string{cow.CopyPage: "CopyPage", cow.CopyFolio: "CopyFolio"}

// runDiff runs n random operations of the seed in one configuration and
// returns how many ran.
func runDiff(t *testing.T, p pageSetup, opts cow.Options, seed uint64, n int) int {
	d := newDiffer(t, p.env(t, newDiffGeometry(p.geometry(t)).arenaBytes()), opts)
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	buf := make([]byte, 4096)
	for d.ops < n {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		d.run(&decoder{b: buf}, n-d.ops)
	}
	d.finish()
	t.Log(d.libStats())
	for k, m := range d.stats {
		t.Logf("%-8v %v", opKind(k), m)
	}
	return d.ops
}
