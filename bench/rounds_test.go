package bench

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestRounds: variants run in interleaved, rotated rounds (0 1 2, 1 2 0,
// 2 0 1, ...),
// at least MinReps rounds and then until each has run Duration, at most
// MaxReps; a failed variant runs no more; each gets its median repetition
// with every time, in the order run, and their spread.
func TestRounds(t *testing.T) {
	// wall times per variant per round, in ms
	walls := [][]float64{{5, 9, 1, 3, 7}, {10, 10, 10, 10, 10}, {2, 2, 2, 2, 2}}
	for _, c := range []struct {
		name     string
		cfg      Config
		rounds   int
		failAt   int // variant 2 fails in this round (-1: never)
		wantMed  []float64
		wantReps []int
	}{
		{"MinReps only", Config{MinReps: 3, MaxReps: 5}, 3, -1, []float64{5, 10, 2}, []int{3, 3, 3}},
		{"until Duration", Config{MinReps: 2, MaxReps: 5, Duration: 8 * time.Millisecond}, 4, -1, []float64{3, 10, 2}, []int{4, 4, 4}},
		{"at most MaxReps", Config{MinReps: 1, MaxReps: 5, Duration: time.Hour}, 5, -1, []float64{5, 10, 2}, []int{5, 5, 5}},
		{"a failure", Config{MinReps: 3, MaxReps: 5}, 3, 1, []float64{5, 10, 2}, []int{3, 3, 2}},
	} {
		var calls []int
		count := make([]int, 3)
		rs, err := rounds(&c.cfg, "w", 3, func(i int) (Result, error) {
			calls = append(calls, i)
			r := Result{Policy: string(rune('a' + i)), WallNs: msNs(walls[i][count[i]])}
			if i == 2 && count[i] == c.failAt {
				r.Err = "failed"
			}
			count[i]++
			return r, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for round := range c.rounds {
			for k := range 3 {
				i := (round + k) % 3
				if i == 2 && c.failAt >= 0 && round > c.failAt {
					continue
				}
				want = append(want, i)
			}
		}
		if !slices.Equal(calls, want) {
			t.Errorf("%s: calls %v, want %v", c.name, calls, want)
		}
		for i, r := range rs {
			if r.Reps != c.wantReps[i] || len(r.RepWallNs) != r.Reps {
				t.Errorf("%s: variant %d: %d reps %v, want %d", c.name, i, r.Reps, r.RepWallNs, c.wantReps[i])
				continue
			}
			if i == 2 && c.failAt >= 0 {
				if r.Err == "" {
					t.Errorf("%s: the failure was lost", c.name)
				}
				continue
			}
			if r.WallNs != msNs(c.wantMed[i]) {
				t.Errorf("%s: variant %d: median %v, want %v ms", c.name, i, time.Duration(r.WallNs), c.wantMed[i])
			}
			for k, ns := range r.RepWallNs {
				if ns != msNs(walls[i][k]) {
					t.Errorf("%s: variant %d: times %v not in the order run", c.name, i, r.RepWallNs)
					break
				}
			}
		}
		if c.name == "MinReps only" {
			if rs[0].Spread != 8.0/5 || rs[1].Spread != 0 {
				t.Errorf("spreads %v and %v, want (9-1)/5 and 0", rs[0].Spread, rs[1].Spread)
			}
		}
	}

	errBoom := errors.New("boom")
	if _, err := rounds(&Config{MinReps: 3, MaxReps: 5}, "w", 2, func(i int) (Result, error) { return Result{}, errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("an error of a run: %v", err)
	}
}
