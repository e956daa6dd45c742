package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/anonfolio/anonfolio/folio"
)

// benchStore returns a store of n keys "key:%012d" with values of size
// bytes, as redis-benchmark's data.
func benchStore(b *testing.B, n, size int) *Store {
	b.Helper()
	s, err := Open(Options{Arena: folio.Config{Size: int64(n)*int64(size+128)*2 + 256<<20}, Capacity: n})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	v := make([]byte, size)
	for i := range n {
		if err := s.Put(benchKey(nil, i), v); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func benchKey(dst []byte, i int) []byte { return fmt.Appendf(dst, "key:%012d", i) }

const benchKeys = 200_000

// BenchmarkGet: GET of random existing keys, 256-byte values, into a
// buffer with room (no allocation).
func BenchmarkGet(b *testing.B) { benchGet(b, false) }

// BenchmarkGetReader is BenchmarkGet through a Reader per goroutine (an
// Accessor of its own) instead of the Space's ReadAt.
func BenchmarkGetReader(b *testing.B) { benchGet(b, true) }

func benchGet(b *testing.B, reader bool) {
	s := benchStore(b, benchKeys, 256)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		get := s.AppendGet
		if reader {
			rd := s.NewReader()
			defer rd.Close()
			get = rd.AppendGet
		}
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		key := make([]byte, 0, 32)
		buf := make([]byte, 0, 512)
		for pb.Next() {
			key = benchKey(key[:0], r.IntN(benchKeys))
			var err error
			if buf, err = get(buf[:0], key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSet: SET of random existing keys (an overwrite in place).
func BenchmarkSet(b *testing.B) {
	s := benchStore(b, benchKeys, 256)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		key := make([]byte, 0, 32)
		v := make([]byte, 256)
		for pb.Next() {
			key = benchKey(key[:0], r.IntN(benchKeys))
			if _, _, _, err := s.Set(nil, key, v, SetOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInsert: SET of new keys into a growing store (allocation and
// incremental rehash).
func BenchmarkInsert(b *testing.B) {
	s, err := Open(Options{Arena: folio.Config{Size: 2 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	key := make([]byte, 0, 32)
	v := make([]byte, 256)
	i := 0
	for b.Loop() {
		key = benchKey(key[:0], i)
		i++
		if err := s.Put(key, v); err != nil {
			b.Fatal(err)
		}
	}
}
