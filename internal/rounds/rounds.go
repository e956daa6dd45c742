// Package rounds reports a benchmark's figures against baselines measured
// in the same run, in interleaved rounds: the machine the figures come from
// is shared and loaded, so a baseline timed once, before or after, says
// little about the moment the measured code ran. Each round times every
// contender once, one after the other; each figure is the median over the
// rounds, and each ratio the median of the rounds' own ratios, with the
// 10th and 90th percentiles as its spread.
//
// Benchmarks only.
package rounds

import (
	"slices"
	"testing"
	"time"
)

// Rounds collects one value per contender per round.
type Rounds struct {
	names []string
	v     [][]float64
}

// New returns rounds of the named contenders; the first is the baseline
// the others' ratios are taken against.
func New(names ...string) *Rounds {
	return &Rounds{names: names, v: make([][]float64, len(names))}
}

// Add records one round: a value per contender, in New's order.
func (r *Rounds) Add(values ...float64) {
	if len(values) != len(r.names) {
		panic("rounds: a round needs one value per contender")
	}
	for c, x := range values {
		r.v[c] = append(r.v[c], x)
	}
}

// Len returns how many rounds were recorded.
func (r *Rounds) Len() int { return len(r.v[0]) }

// Median returns contender c's median value.
func (r *Rounds) Median(c int) float64 { return quantile(r.v[c], 0.5) }

// Ratio returns the median, 10th and 90th percentiles of contender c's
// value over the baseline's, round by round.
func (r *Rounds) Ratio(c int) (median, p10, p90 float64) {
	q := make([]float64, r.Len())
	for k := range q {
		q[k] = r.v[c][k] / r.v[0][k]
	}
	return quantile(q, 0.5), quantile(q, 0.1), quantile(q, 0.9)
}

// Report reports each contender's median as "<name>-<unit>" (the first
// contender after the baseline, the measured one, as plain <unit>) and
// each one's ratio to the baseline as "x-<baseline>", with "-p10" and
// "-p90" variants: x-memclr, x-memclr-p10, x-memclr-p90.
func (r *Rounds) Report(b *testing.B, unit string) {
	b.Helper()
	if r.Len() == 0 {
		return
	}
	for c, name := range r.names {
		metric := name + "-" + unit
		if c == 1 {
			metric = unit
		}
		b.ReportMetric(r.Median(c), metric)
	}
	base := "x-" + r.names[0]
	for c := 1; c < len(r.names); c++ {
		m, lo, hi := r.Ratio(c)
		name := base
		if c > 1 {
			name = r.names[c] + "-" + base
		}
		b.ReportMetric(m, name)
		b.ReportMetric(lo, name+"-p10")
		b.ReportMetric(hi, name+"-p90")
	}
}

// Time returns how long fn took, in ns.
func Time(fn func()) float64 {
	start := time.Now()
	fn()
	return float64(time.Since(start).Nanoseconds())
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}
