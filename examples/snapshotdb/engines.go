package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/tidwall/btree"
)

// engine is one way to keep the data and save it in the background.
type engine interface {
	name() string
	put(k, v []byte) error
	// save takes a snapshot and writes it to w while writers go on; it
	// returns how long the snapshot stopped the writers (the Fork, the
	// deep copy, the Copy) and how many bytes the snapshot copied.
	save(w io.Writer) (pause time.Duration, copied int64, err error)
	close()
}

// storeEngine is the anonfolio store.
type storeEngine struct{ s *store.Store }

func (e *storeEngine) name() string          { return "anonfolio store (Fork)" }
func (e *storeEngine) put(k, v []byte) error { return e.s.Put(k, v) }
func (e *storeEngine) close()                { e.s.Close() }
func (e *storeEngine) save(w io.Writer) (time.Duration, int64, error) {
	err := e.s.Save(w)
	st := e.s.Stats()
	return st.LastFork, int64(st.LastCowBytes), err
}

// mapEngine is a Go map under a lock, snapshotted by a deep copy taken
// with the writers locked out.
type mapEngine struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func (e *mapEngine) name() string { return "Go map (deep copy)" }
func (e *mapEngine) close()       { e.m = nil }
func (e *mapEngine) put(k, v []byte) error {
	v = bytes.Clone(v)
	e.mu.Lock()
	e.m[string(k)] = v
	e.mu.Unlock()
	return nil
}
func (e *mapEngine) save(w io.Writer) (time.Duration, int64, error) {
	e.mu.Lock()
	start := time.Now()
	c := make(map[string][]byte, len(e.m))
	var copied int64
	for k, v := range e.m {
		c[k] = bytes.Clone(v)
		copied += int64(len(k) + len(v))
	}
	pause := time.Since(start)
	e.mu.Unlock()
	rw := newRecordWriter(w)
	for k, v := range c {
		rw.write([]byte(k), v)
	}
	return pause, copied, rw.flush()
}

// btreeEngine is github.com/tidwall/btree's BTreeG, snapshotted by Copy():
// O(1), and the writes after it copy the nodes they change.
type btreeEngine struct{ t *btree.BTreeG[kv] }

type kv struct {
	k string
	v []byte
}

func newBtreeEngine() *btreeEngine {
	return &btreeEngine{btree.NewBTreeG(func(a, b kv) bool { return a.k < b.k })}
}

func (e *btreeEngine) name() string { return "tidwall/btree (Copy)" }
func (e *btreeEngine) close()       { e.t = nil }
func (e *btreeEngine) put(k, v []byte) error {
	e.t.Set(kv{string(k), bytes.Clone(v)})
	return nil
}
func (e *btreeEngine) save(w io.Writer) (time.Duration, int64, error) {
	before := heapAllocated()
	start := time.Now()
	c := e.t.Copy()
	pause := time.Since(start)
	rw := newRecordWriter(w)
	c.Scan(func(it kv) bool {
		rw.write([]byte(it.k), it.v)
		return true
	})
	// What the writers allocated meanwhile: their values and the nodes
	// they copied (the tree's COW); there is no finer count.
	return pause, int64(heapAllocated() - before), rw.flush()
}

// heapAllocated is the Go heap's cumulative allocation in bytes.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// recordWriter writes {klen, vlen, key, value} records, as a simple dump
// format would.
type recordWriter struct {
	w   *bufio.Writer
	hdr [8]byte
}

func newRecordWriter(w io.Writer) *recordWriter {
	return &recordWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

func (r *recordWriter) write(k, v []byte) {
	binary.LittleEndian.PutUint32(r.hdr[:], uint32(len(k)))
	binary.LittleEndian.PutUint32(r.hdr[4:], uint32(len(v)))
	r.w.Write(r.hdr[:])
	r.w.Write(k)
	r.w.Write(v)
}

func (r *recordWriter) flush() error { return r.w.Flush() }
