package bench

import (
	"errors"
	"testing"
)

func TestConfigInvalid(t *testing.T) {
	for _, c := range []Config{
		{Size: 3 << 20},
		{Size: -2 << 20},
		{Workloads: []string{"seqfill", "nosuch"}},
		{Policies: []string{"3KiB"}},
		{COW: []string{"leaf"}},
		{PinRange: 3 << 10},
		{SparseStride: 12},
		{WritePercent: 150},
		{Bloat: -1},
		{ForkScale: []float64{0}},
		{Duration: -1},
		{MinReps: -1},
		{MinReps: 6, MaxReps: 5},
		{Custom: []Workload{{Name: "x"}}},
	} {
		if _, err := c.withDefaults(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", c, err)
		}
		if _, err := Run(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("Run(%+v): %v, want ErrInvalid", c, err)
		}
	}
	c, err := Config{}.withDefaults()
	if err != nil || c.Size != DefaultSize || c.Bloat != DefaultBloat || c.ForkRounds != DefaultForkRounds || c.MinReps != 3 || c.MaxReps != 5 {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	if c, err := (Config{MinReps: 7}).withDefaults(); err != nil || c.MaxReps != 7 {
		t.Errorf("MinReps 7: MaxReps %d, %v; want 7", c.MaxReps, err)
	}
}
