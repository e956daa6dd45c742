package main

import (
	"errors"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// flushAt: a reply buffer this long is written out before the next
// command, so that a long pipeline of large replies does not pile up.
const flushAt = 64 << 10

// server serves RESP2 over a store: a goroutine per connection, each
// reading what is available, running every complete command in it
// (pipelining), and writing the replies when its input is drained. The
// store makes each command atomic; the server keeps no lock on a
// command's path.
type server struct {
	st    *store.Store
	cfg   *config
	start time.Time
	logf  func(format string, args ...any)

	conns    atomic.Int64 // connections accepted (total_connections_received)
	rejected atomic.Int64 // connections refused over maxclients
	nextID   atomic.Int64
	retired  counters // the counters of closed connections
	opsPeak  atomic.Int64
	memPeak  atomic.Int64

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
	s := &server{st: st, cfg: cfg, start: time.Now(), logf: log.Printf,
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
	s.connMu.Unlock()
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
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		s.conns.Add(1)
		c := newClient(s.nextID.Add(1), conn)
		switch s.register(c) {
		case registerClosed:
			conn.Close()
			return nil
		case registerFull:
			s.rejected.Add(1)
			conn.Write([]byte("-ERR max number of clients reached\r\n"))
			conn.Close()
			continue
		}
		go s.handle(c)
	}
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
		c.conn.Close()
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
	s.retired.add(&c.counters)
	s.connMu.Lock()
	delete(s.clients, c)
	s.connMu.Unlock()
	s.wg.Done()
}

// handle serves one connection until it closes, QUIT or a protocol error.
func (s *server) handle(c *client) {
	defer s.forget(c)
	c.sr = s.st.NewReader()
	defer c.sr.Close()
	for {
		for {
			args, ok, err := c.rd.next()
			if err != nil {
				var pe *protocolError
				if errors.As(err, &pe) {
					c.err("ERR " + pe.Error())
					c.flush()
				}
				return
			}
			if !ok {
				break
			}
			if len(args) == 0 {
				continue
			}
			s.exec(c, args)
			if c.quit {
				c.flush()
				return
			}
			if len(c.out) >= flushAt && c.flush() != nil {
				return
			}
		}
		// Pipelining: the replies go out when no command is left.
		if len(c.out) > 0 && c.flush() != nil {
			return
		}
		c.rd.shrink()
		if err := c.rd.fill(); err != nil {
			return
		}
		c.counters.netIn.Store(c.rd.nread)
	}
}

// exec runs one command.
func (s *server) exec(c *client, args [][]byte) {
	cmd := lookupCommand(args[0])
	switch {
	case cmd == nil:
		c.err("ERR unknown command '" + clip(args[0], 128) + "', with args beginning with: " + argsPreview(args[1:]))
		return
	case cmd.arity >= 0 && len(args) != cmd.arity, cmd.arity < 0 && len(args) < -cmd.arity:
		c.err("ERR wrong number of arguments for '" + cmd.name + "' command")
		return
	}
	c.counters.commands.Add(1)
	cmd.run(s, c, args)
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
