package main

import (
	"errors"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// flushAt: a reply buffer this long is written out before the next
// command, so that a long pipeline of large replies does not pile up.
const flushAt = 64 << 10

// server serves RESP2 over a store. On Linux, event loops (one per two
// Ps by default) serve the connections, as Redis's ae does: each
// waits in epoll for sockets with input, reads what is there, runs every
// complete command in it (pipelining), and writes the replies; a command
// that can block (SAVE, SHUTDOWN, KEYS, FLUSHALL) runs in a goroutine of
// its own while the loop serves the others. Elsewhere, or with ioLoops 0,
// each connection has a goroutine that does the same. The store makes
// each command atomic; the server keeps no lock on a command's path.
type server struct {
	st      *store.Store
	cfg     *config
	start   time.Time
	logf    func(format string, args ...any)
	ioLoops int // event loops serve starts; 0: a goroutine per connection

	loops      []*eventLoop // started by serve, under connMu
	beforeSave func()       // a test's hook: every save calls it first
	afterPost  func()       // a test's hook: an event loop's post calls it once it let go of the loop's lock

	conns    atomic.Int64 // connections accepted (total_connections_received)
	rejected atomic.Int64 // connections refused over maxclients
	nextID   atomic.Int64
	// retired are the counters of closed connections: moved in, read and
	// reset under connMu, so that a closing connection is counted once.
	// +checklocks:connMu
	retired counters
	opsPeak atomic.Int64
	memPeak atomic.Int64

	connMu sync.Mutex
	// +checklocks:connMu
	ln net.Listener
	// +checklocks:connMu
	clients map[*client]struct{}
	// +checklocks:connMu
	closed bool

	wg      sync.WaitGroup // connection handlers
	persist persistence
	ops     opsMeter

	stopCron chan struct{}
	cronDone chan struct{}
}

func newServer(st *store.Store, cfg *config) *server {
	s := &server{st: st, cfg: cfg, start: time.Now(), logf: log.Printf, ioLoops: defaultLoops(),
		clients: map[*client]struct{}{}, stopCron: make(chan struct{}), cronDone: make(chan struct{})}
	s.persist.init(s.start)
	go s.cron()
	return s
}

// serve accepts connections on ln until shutdown.
func (s *server) serve(ln net.Listener) error {
	s.connMu.Lock()
	if s.closed {
		s.connMu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	if err := s.startLoops(); err != nil {
		s.connMu.Unlock()
		ln.Close()
		return err
	}
	s.connMu.Unlock()
	retry := acceptRetryMin
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.connMu.Lock()
			closed := s.closed
			s.connMu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
			case outOfResources(err): // the connection waits in the backlog meanwhile
				s.logf("accepting a connection: %v: retrying in %v", err, retry)
			default:
				return err
			}
			time.Sleep(retry)
			retry = min(2*retry, acceptRetryMax)
			continue
		}
		retry = acceptRetryMin
		s.conns.Add(1)
		c := newClient(s.nextID.Add(1), conn)
		c.addr, c.laddr = conn.RemoteAddr().String(), conn.LocalAddr().String()
		l := s.pickLoop(c, conn)
		switch s.register(c) {
		case registerClosed:
			c.conn.Close()
			return nil
		case registerFull:
			s.rejected.Add(1)
			c.conn.Write([]byte("-ERR max number of clients reached\r\n"))
			c.conn.Close()
			continue
		}
		switch {
		case l == nil:
			go s.handle(c)
		case !l.post(c): // the loop exited: shutdown began
			s.forget(c)
		}
	}
}

// A failed accept that may succeed later is retried after acceptRetryMin,
// doubling up to acceptRetryMax while it keeps failing (as net/http).
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

// outOfResources reports whether accept failed for want of descriptors or
// memory: a flood of connections, not a broken listener. Redis logs it
// and goes on; so does serve, after a pause.
func outOfResources(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

type registerResult uint8

const (
	registered registerResult = iota
	registerClosed
	registerFull
)

// register adds a new connection to the clients, unless the server is
// shutting down or has maxclients.
func (s *server) register(c *client) registerResult {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	switch {
	case s.closed:
		return registerClosed
	case len(s.clients) >= s.cfg.maxClients():
		return registerFull
	}
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	return registered
}

// shutdown stops accepting and closes every connection; it does not wait
// (a SHUTDOWN command runs in one of them): wait does.
func (s *server) shutdown() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.clients {
		if c.fd < 0 { // a loop closes its own, when it stops
			c.conn.Close()
		}
	}
	for _, l := range s.loops {
		l.stop()
	}
	close(s.stopCron)
}

// isClosed reports whether shutdown began.
func (s *server) isClosed() bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.closed
}

// wait waits, after shutdown, for the connections, the cron and a
// background save to end.
func (s *server) wait() {
	s.wg.Wait()
	<-s.cronDone
	s.persist.wg.Wait()
}

// close is shutdown and wait.
func (s *server) close() {
	s.shutdown()
	s.wait()
}

// forget drops a closed connection, keeping its counters.
func (s *server) forget(c *client) {
	c.conn.Close()
	s.connMu.Lock()
	s.retired.add(&c.counters) // with the delete, under connMu: totals counts c once
	delete(s.clients, c)
	s.connMu.Unlock()
	s.wg.Done()
}

// connState is what a connection needs after runBuffered.
type connState uint8

const (
	needInput connState = iota // more input (the replies may be pending)
	needRoom                   // the socket is full: wait for it to take the replies, then go on
	mustClose                  // QUIT, SHUTDOWN or a protocol error: write the replies, then close
	parked                     // a blocking command of it runs in its own goroutine
)

// runBuffered runs the complete commands in c's input, in order, until
// none is left, the connection must close, or park takes a command (an
// event loop hands its blocking commands to a goroutine: park returns
// true, and the loop calls runBuffered again when the command is done).
// It writes the replies out as they pass flushAt, and stops if the socket
// does not take them all (a loop's non-blocking socket): a client that
// does not read its replies gets no more of its commands run.
func (s *server) runBuffered(c *client, park func(c *client, cmd *command, args [][]byte) bool) connState {
	for {
		args, ok, err := c.rd.next()
		if err != nil {
			var pe *protocolError
			if errors.As(err, &pe) {
				c.err("ERR " + pe.Error())
			}
			return mustClose
		}
		if !ok {
			return needInput
		}
		if len(args) == 0 {
			continue
		}
		cmd := s.lookup(c, args)
		if cmd == nil {
			continue
		}
		if park != nil && cmd.blocks && park(c, cmd, args) {
			return parked
		}
		cmd.run(s, c, args)
		if c.quit {
			return mustClose
		}
		if len(c.out) >= flushAt {
			if c.flush() != nil {
				return mustClose
			}
			if len(c.out) > 0 {
				return needRoom
			}
		}
	}
}

// exec runs one command.
func (s *server) exec(c *client, args [][]byte) {
	if cmd := s.lookup(c, args); cmd != nil {
		cmd.run(s, c, args)
	}
}

// lookup finds args' command and checks its arity; if it cannot run, it
// replies with Redis's error and returns nil.
func (s *server) lookup(c *client, args [][]byte) *command {
	cmd := lookupCommand(args[0])
	switch {
	case cmd == nil:
		c.err("ERR unknown command '" + clip(args[0], 128) + "', with args beginning with: " + argsPreview(args[1:]))
		return nil
	case cmd.arity >= 0 && len(args) != cmd.arity, cmd.arity < 0 && len(args) < -cmd.arity:
		c.err("ERR wrong number of arguments for '" + cmd.name + "' command")
		return nil
	}
	c.counters.commands.Add(1)
	return cmd
}

// clip returns b as a string of at most n bytes, control characters
// replaced by spaces, for an error message.
func clip(b []byte, n int) string {
	out := []byte(string(b[:min(len(b), n)]))
	for i, ch := range out {
		if ch < ' ' || ch == 0x7f {
			out[i] = ' '
		}
	}
	return string(out)
}

// argsPreview lists arguments as Redis's unknown-command error does: each
// quoted and followed by a space, 128 bytes in all at most.
func argsPreview(args [][]byte) string {
	var b []byte
	for _, a := range args {
		room := 128 - len(b)
		if room <= 0 {
			break
		}
		b = append(b, '\'')
		b = append(b, clip(a, room)...)
		b = append(b, '\'', ' ')
	}
	return string(b)
}
