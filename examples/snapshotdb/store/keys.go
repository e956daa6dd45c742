package store

// Commands over several keys lock each shard involved, in index order,
// for the whole command: it is atomic, as Redis's single thread makes it,
// and two such commands cannot deadlock.

// shardSet is a set of shard indexes (there are at most 256 shards).
type shardSet [4]uint64

func (ss *shardSet) add(i int) { ss[i/64] |= 1 << (i % 64) }

func (ss *shardSet) has(i int) bool { return ss[i/64]&(1<<(i%64)) != 0 }

// lockSet locks the shards of ss in index order, for writing or reading.
//
// +checklocksignore: the set of locks is dynamic.
func (s *Store) lockSet(ss *shardSet, write bool) {
	for i := range s.shards {
		if !ss.has(i) {
			continue
		}
		if write {
			s.shards[i].mu.Lock()
		} else {
			s.shards[i].mu.RLock()
		}
	}
}

// +checklocksignore: the set of locks is dynamic.
func (s *Store) unlockSet(ss *shardSet, write bool) {
	for i := range s.shards {
		if !ss.has(i) {
			continue
		}
		if write {
			s.shards[i].mu.Unlock()
		} else {
			s.shards[i].mu.RUnlock()
		}
	}
}

// eachKey locks the shards of keys (for writing or reading) and calls fn
// for each key in order, with its shard and hash, summing what fn returns;
// it stops at the first error.
func (s *Store) eachKey(keys [][]byte, write bool, fn func(sh *shard, h uint64, key []byte) (int, error)) (int, error) {
	var hs [16]uint64
	hashes := hs[:0]
	var set shardSet
	for _, k := range keys {
		h := keyHash(s.seed, k)
		hashes = append(hashes, h)
		set.add(int(h >> s.shardShift))
	}
	s.lockSet(&set, write)
	defer s.unlockSet(&set, write)
	total := 0
	for i, h := range hashes {
		n, err := fn(s.shardOf(h), h, keys[i])
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
