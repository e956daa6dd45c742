package rounds

import "testing"

// TestRatiosAreTakenRoundByRound: a round where both contenders ran slow
// (a loaded moment) keeps the ratio of that round; one where only the
// baseline did moves that round's ratio alone, which the median and the
// 10-90 % range leave out; medians are those of the values.
func TestRatiosAreTakenRoundByRound(t *testing.T) {
	r := New("base", "ours")
	for k := range 10 {
		switch k {
		case 3:
			r.Add(200, 300) // both slow: still 1.5
		case 7:
			r.Add(1000, 1100) // the baseline alone slow: 1.1
		default:
			r.Add(100, 150)
		}
	}
	if r.Len() != 10 || r.Median(0) != 100 || r.Median(1) != 150 {
		t.Fatalf("%d rounds, medians %v and %v", r.Len(), r.Median(0), r.Median(1))
	}
	if m, lo, hi := r.Ratio(1); m != 1.5 || lo != 1.5 || hi != 1.5 {
		t.Fatalf("ratio %v (p10 %v, p90 %v), want 1.5 throughout", m, lo, hi)
	}
}
