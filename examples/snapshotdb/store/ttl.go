package store

import (
	"math/rand/v2"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// Keys with a TTL: each shard keeps, in its space, an array of the
// addresses of its records that have one, and each such record its index
// there (ttlIdx), so that adding, removing and moving a TTL is O(1) and
// the active expiry can sample keys with a TTL uniformly, as Redis samples
// its expires dict. A key past its TTL is also treated as absent by every
// command that reaches it (lazy expiry), and deleted by the writers.

const (
	minTTLCap = 512
	// Active expiry, as Redis's activeExpireCycle at its default effort:
	// sample 20 keys with a TTL, delete the expired ones, and sample again
	// while more than a tenth of a sample had expired.
	expireSampleKeys = 20
	expireStalePerc  = 10
)

// ttlReserve makes room for one more entry, growing the array.
//
// +checklocks:sh.mu
func (sh *shard) ttlReserve() error {
	d := &sh.d
	if d.ttlLen < d.ttlCap {
		return nil
	}
	ncap := max(minTTLCap, 2*d.ttlCap)
	addr, err := sh.allocBlock(int(ncap * 8))
	if err != nil {
		return err
	}
	var tmp [4096]byte
	for off := uint64(0); off < d.ttlLen*8; off += uint64(len(tmp)) {
		b := tmp[:min(uint64(len(tmp)), d.ttlLen*8-off)]
		if _, err := sh.mem.ReadAt(b, int64(d.ttl)+int64(off)); err == nil {
			_, err = sh.mem.WriteAt(b, int64(addr)+int64(off))
		}
		if err != nil {
			sh.alloc.Free(addr)
			return err
		}
	}
	old := d.ttl
	d.ttl, d.ttlCap = addr, ncap
	if err := sh.writeHeader(); err != nil {
		return err
	}
	if old != 0 {
		return sh.alloc.Free(old)
	}
	return nil
}

// ttlPush appends rec to the array; the caller reserved room and wrote
// the index, d.ttlLen, into the record.
//
// +checklocks:sh.mu
func (sh *shard) ttlPush(rec cow.Addr) error {
	d := &sh.d
	if err := writeU64(sh.mem, d.ttl+cow.Addr(d.ttlLen*8), uint64(rec)); err != nil {
		return err
	}
	d.ttlLen++
	return sh.writeHeader()
}

// ttlRemove removes entry idx: the last entry takes its place.
//
// +checklocks:sh.mu
func (sh *shard) ttlRemove(idx uint32) error {
	d := &sh.d
	if uint64(idx) >= d.ttlLen {
		return corrupt("TTL index %d of %d", idx, d.ttlLen)
	}
	if last := d.ttlLen - 1; uint64(idx) != last {
		p, err := readU64(sh.mem, d.ttl+cow.Addr(last*8))
		if err != nil {
			return err
		}
		if err := writeU64(sh.mem, d.ttl+cow.Addr(uint64(idx)*8), p); err != nil {
			return err
		}
		if err := writeU32(sh.mem, cow.Addr(p)+recTTLIdx, idx); err != nil {
			return err
		}
	}
	d.ttlLen--
	return sh.writeHeader()
}

// ttlMove points entry idx at a record's new address.
//
// +checklocks:sh.mu
func (sh *shard) ttlMove(idx uint32, rec cow.Addr) error {
	return writeU64(sh.mem, sh.d.ttl+cow.Addr(uint64(idx)*8), uint64(rec))
}

// expireSample samples up to n keys with a TTL and deletes those expired
// at now. It returns how many it sampled and deleted, and the sum of the
// remaining TTLs it saw (for avg_ttl).
func (sh *shard) expireSample(now int64, n int, rng *rand.Rand) (sampled, expired int, ttlSum int64, err error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := &sh.d
	for ; sampled < n && d.ttlLen > 0; sampled++ {
		j := rng.Uint64N(d.ttlLen)
		p, err := readU64(sh.mem, d.ttl+cow.Addr(j*8))
		if err != nil {
			return sampled, expired, ttlSum, err
		}
		var b [recHdr]byte
		if _, err := sh.mem.ReadAt(b[:], int64(p)); err != nil {
			return sampled, expired, ttlSum, err
		}
		rec := decodeRec(b[:])
		if rec.expire > now {
			ttlSum += rec.expire - now
			continue
		}
		f, err := locate(sh.mem, d, rec.hash, cow.Addr(p))
		if err == nil {
			err = sh.remove(&f)
		}
		if err != nil {
			return sampled, expired, ttlSum, err
		}
		sh.expired++
		expired++
	}
	return sampled, expired, ttlSum, nil
}

// ExpireCycle runs one cycle of active expiry (Redis's activeExpireCycle):
// shard by shard, from where the previous cycle stopped, it samples keys
// with a TTL and deletes the expired ones, sampling a shard again while
// more than a tenth of a sample had expired, until every shard is done or
// budget has passed. It holds one shard's lock at a time, for one sample.
// It returns the keys it deleted. The store's cron calls it ten times a
// second.
func (s *Store) ExpireCycle(budget time.Duration) (int, error) {
	s.cronMu.Lock()
	defer s.cronMu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	start := time.Now()
	now := s.now()
	total := 0
	var samples, ttlSum int64
	for range len(s.shards) {
		sh := &s.shards[s.expireNext]
		s.expireNext = (s.expireNext + 1) % len(s.shards)
		for {
			n, exp, sum, err := sh.expireSample(now, expireSampleKeys, s.rng)
			total += exp
			samples += int64(n - exp)
			ttlSum += sum
			if err != nil {
				return total, err
			}
			if n == 0 || exp*100 <= n*expireStalePerc || time.Since(start) > budget {
				break
			}
		}
		if time.Since(start) > budget {
			break
		}
	}
	if samples > 0 { // a running average, as Redis keeps db->avg_ttl
		avg := ttlSum / samples
		if prev := s.avgTTL.Load(); prev != 0 {
			avg = prev/50*49 + avg/50
		}
		s.avgTTL.Store(avg)
	}
	return total, nil
}
