package main

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// counters are one connection's statistics. Only its goroutine adds to
// them; INFO reads them from another, hence the atomics (uncontended).
type counters struct {
	commands atomic.Int64
	hits     atomic.Int64
	misses   atomic.Int64
	errors   atomic.Int64
	netIn    atomic.Int64
	netOut   atomic.Int64
}

// add adds o's counters to c's.
func (c *counters) add(o *counters) {
	c.commands.Add(o.commands.Load())
	c.hits.Add(o.hits.Load())
	c.misses.Add(o.misses.Load())
	c.errors.Add(o.errors.Load())
	c.netIn.Add(o.netIn.Load())
	c.netOut.Add(o.netOut.Load())
}

// reset sets the counters to zero.
func (c *counters) reset() {
	for _, v := range []*atomic.Int64{&c.commands, &c.hits, &c.misses, &c.errors, &c.netIn, &c.netOut} {
		v.Store(0)
	}
}

// client is one connection. Its fields belong to whoever runs its
// commands (its event loop, the goroutine a blocking command of it runs in,
// or its own goroutine), except the counters and the name: CLIENT LIST
// and INFO read them from others.
type client struct {
	id      int64
	conn    io.ReadWriteCloser
	addr    string // the peer's address, for CLIENT LIST
	laddr   string // ours
	rd      *reader
	out     []byte // replies not yet written: out[sent:]
	sent    int
	tried   int           // len(out) at flushEvery's last try that left replies pending
	val     []byte        // scratch for a value read from the store
	sr      *store.Reader // the connection's reads (GET) go through its own Accessor
	created time.Time
	name    atomic.Pointer[string]
	quit    bool // close once the replies are written
	counters

	busy bool // a blocking command of it runs off the loop (loop-owned)
	fd   int  // its socket when an event loop serves it (the loop's key); -1: its own goroutine
}

func newClient(id int64, conn io.ReadWriteCloser) *client {
	return &client{id: id, conn: conn, rd: newReader(conn), out: make([]byte, 0, 16<<10),
		val: make([]byte, 0, 1024), created: time.Now(), fd: -1}
}

// flush writes the replies out, as many as the socket takes: a blocking
// connection takes them all; in an event loop, what the socket cannot
// take yet stays in out[sent:], and the loop writes it when the socket
// has room again. out is empty when nothing is pending.
func (c *client) flush() error {
	n, err := c.conn.Write(c.out[c.sent:])
	c.counters.netOut.Add(int64(n))
	c.sent += n
	switch {
	case c.sent < len(c.out):
		return err
	case cap(c.out) > 4*flushAt: // a large reply grew it: give it back
		c.out, c.sent = make([]byte, 0, 16<<10), 0
	default:
		c.out, c.sent = c.out[:0], 0
	}
	c.tried = 0
	return err
}

// flushEvery is flush for a long reply being built (KEYS): it writes once
// flushAt more bytes wait than at its last try, so that a socket that
// takes nothing costs a write per flushAt bytes of reply, not one per
// element.
func (c *client) flushEvery() error {
	if len(c.out)-c.tried < flushAt {
		return nil
	}
	err := c.flush()
	if len(c.out) > 0 {
		c.tried = len(c.out)
	}
	return err
}

// Replies.
func (c *client) ok()              { c.out = append(c.out, "+OK\r\n"...) }
func (c *client) simple(s string)  { c.out = appendSimple(c.out, s) }
func (c *client) int(n int64)      { c.out = appendInt(c.out, n) }
func (c *client) bulk(b []byte)    { c.out = appendBulk(c.out, b) }
func (c *client) bulkStr(s string) { c.out = appendBulkString(c.out, s) }
func (c *client) null()            { c.out = appendNil(c.out) }
func (c *client) array(n int)      { c.out = appendArray(c.out, n) }
func (c *client) nullArray()       { c.out = appendNilArray(c.out) }
func (c *client) err(msg string)   { c.out = appendError(c.out, msg); c.counters.errors.Add(1) }
func (c *client) syntaxErr()       { c.err("ERR syntax error") }
func (c *client) notInteger()      { c.err("ERR value is not an integer or out of range") }
func (c *client) bool(b bool)      { c.int(b2i(b)) }
func (c *client) countHit(ok bool) {
	if ok {
		c.counters.hits.Add(1)
	} else {
		c.counters.misses.Add(1)
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
