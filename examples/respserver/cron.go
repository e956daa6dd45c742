package main

import (
	"sync"
	"time"
)

// cron is Redis's serverCron, hz times a second: active expiry (a quarter
// of the tick at most, as Redis's slow cycle), the rehash steps of idle
// shards (a millisecond), save points, and the samples INFO reports.
func (s *server) cron() {
	defer close(s.cronDone)
	for {
		tick := time.Second / time.Duration(max(s.cfg.hzValue(), 1))
		select {
		case <-s.stopCron:
			return
		case <-time.After(tick):
		}
		if _, err := s.st.ExpireCycle(tick / 4); err != nil {
			s.logf("active expiry: %v", err)
		}
		s.st.KeepSplit(s.cfg.deltas()) // a collapse would make the next delta hold its whole 2 MiB
		if err := s.st.Maintain(time.Millisecond); err != nil {
			s.logf("rehash: %v", err)
		}
		s.checkSavePoints()
		s.ops.sample(s.totals().commands)
		if m := usedMemory(s); m > s.memPeak.Load() {
			s.memPeak.Store(m)
		}
	}
}

// opsMeter is instantaneous_ops_per_sec: the rate over the last samples,
// as Redis's trackInstantaneousMetric (16 samples).
type opsMeter struct {
	mu sync.Mutex
	// +checklocks:mu
	last int64
	// +checklocks:mu
	lastAt time.Time
	// +checklocks:mu
	rates [16]float64
	// +checklocks:mu
	n int
}

func (m *opsMeter) sample(total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if !m.lastAt.IsZero() {
		if d := now.Sub(m.lastAt).Seconds(); d > 0 {
			m.rates[m.n%len(m.rates)] = float64(total-m.last) / d
			m.n++
		}
	}
	m.last, m.lastAt = total, now
}

func (m *opsMeter) rate() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := min(m.n, len(m.rates))
	if k == 0 {
		return 0
	}
	var sum float64
	for _, r := range m.rates[:k] {
		sum += r
	}
	return int64(sum / float64(k))
}
