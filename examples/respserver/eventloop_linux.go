//go:build linux

package main

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// defaultLoops is one event loop per two Ps, one at least: the other half
// is left to the clients (on a benchmark's machine), the cron, the saves
// and the garbage collector. A loop needs about a core to itself: two
// loops on this 2-core machine spent 24 us of CPU per request without
// pipelining where one spent 17 (README, "Where the time goes").
func defaultLoops() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// eventLoop serves connections from one goroutine, as Redis's event loop
// (ae) does: it waits in epoll, level-triggered, for sockets with input,
// reads each once (16 KiB or more, as Redis), runs every complete command
// and writes the replies. Against a goroutine per connection it saves a
// read per request: Go's poller parks a goroutine only after a read came
// back empty (EAGAIN), where epoll says beforehand which sockets have
// input. A socket that cannot take all its replies is watched for room
// instead, and its input waits until they are out (a slow reader does not
// grow the server's memory). A blocking command runs in a goroutine of
// its own: its connection leaves the epoll set until it is done, and the
// loop serves the others meanwhile.
type eventLoop struct {
	s    *server
	epfd int
	wake int           // an eventfd: post and stop write it to wake the loop
	sr   *store.Reader // the GETs of its connections go through its Accessor

	mu sync.Mutex
	// +checklocks:mu
	incoming []*client // new connections, and connections back from a blocking command
	// +checklocks:mu
	stopping bool // shutdown began: close the connections, then exit
	// +checklocks:mu
	closed bool // the loop exited: post refuses

	// The loop goroutine's own.
	conns    map[int32]*client // by socket
	events   []unix.EpollEvent
	batch    []*client // incoming, taken
	stopSeen bool
}

// startLoops starts the server's event loops. Called with connMu held.
func (s *server) startLoops() error {
	for range s.ioLoops {
		l, err := newEventLoop(s)
		if err != nil {
			for _, l := range s.loops {
				l.stop()
			}
			return err
		}
		s.loops = append(s.loops, l)
		s.wg.Add(1)
		go l.run()
	}
	return nil
}

func newEventLoop(s *server) (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, &net.OpError{Op: "epoll_create1", Err: err}
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, &net.OpError{Op: "eventfd", Err: err}
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, &net.OpError{Op: "epoll_ctl", Err: err}
	}
	return &eventLoop{s: s, epfd: epfd, wake: wake, sr: s.st.NewReader(),
		conns: map[int32]*client{}, events: make([]unix.EpollEvent, 128)}, nil
}

// pickLoop gives a new connection to an event loop, round robin: the loop
// takes a copy of its socket (and Go's poller forgets the original). It
// leaves the connection to a goroutine of its own if there is no loop or
// the socket cannot be had.
func (s *server) pickLoop(c *client, conn net.Conn) *eventLoop {
	if len(s.loops) == 0 {
		return nil
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		return nil
	}
	conn.Close()
	l := s.loops[c.id%int64(len(s.loops))]
	c.conn, c.fd, c.sr = &fdConn{fd: fd}, fd, l.sr
	c.rd.src = c.conn
	return l
}

// post hands the loop a new connection, or one whose blocking command is
// done. It reports false if the loop has exited.
func (l *eventLoop) post(c *client) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.incoming = append(l.incoming, c)
	l.kick()
	l.mu.Unlock()
	if l.s.afterPost != nil {
		l.s.afterPost()
	}
	return true
}

// stop makes the loop close its connections (each after its blocking
// command, if one runs) and exit.
func (l *eventLoop) stop() {
	l.mu.Lock()
	l.stopping = true
	if !l.closed {
		l.kick()
	}
	l.mu.Unlock()
}

// kick wakes the loop. Called with mu held and closed false: the loop
// closes its eventfd once it is closed, and the number may then be any
// file's the process opens (a write to it would land in that file).
//
// +checklocks:l.mu
func (l *eventLoop) kick() {
	one := [8]byte{1}
	unix.Write(l.wake, one[:]) // EAGAIN: the counter is full, the loop is being woken anyway
}

// run is the loop.
func (l *eventLoop) run() {
	defer l.s.wg.Done()
	for {
		n, err := unix.EpollWait(l.epfd, l.events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.s.logf("epoll_wait: %v: closing the loop's connections", err)
			l.mu.Lock()
			l.stopping = true
			l.mu.Unlock()
			n = 0
			l.drain()
		}
		for _, ev := range l.events[:n] {
			if ev.Fd == int32(l.wake) {
				l.drain()
				continue
			}
			c := l.conns[ev.Fd]
			if c == nil || c.busy {
				continue
			}
			l.ready(c)
		}
		if l.stopSeen && len(l.conns) == 0 {
			l.exit()
			return
		}
	}
}

// ready serves a connection epoll reported: its replies, if it was
// waiting for room (then it closes if it was to close after them), else
// its input.
func (l *eventLoop) ready(c *client) {
	if len(c.out) > 0 {
		if c.flush() != nil {
			l.close(c)
			return
		}
		if len(c.out) > 0 {
			return
		}
		if c.quit {
			l.close(c)
			return
		}
		if err := l.watch(c, unix.EPOLL_CTL_MOD, unix.EPOLLIN); err != nil {
			l.close(c)
			return
		}
		l.serve(c) // input that waited for the replies
		return
	}
	if err := c.rd.fill(); err != nil {
		l.close(c)
		return
	}
	c.counters.netIn.Add(c.rd.takeRead())
	l.serve(c)
}

// serve runs a connection's buffered commands and writes the replies.
func (l *eventLoop) serve(c *client) {
	switch l.s.runBuffered(c, l.park) {
	case parked:
		return
	case mustClose:
		l.closeAfterReply(c, unix.EPOLL_CTL_MOD)
		return
	case needInput:
		if len(c.out) > 0 && c.flush() != nil {
			l.close(c)
			return
		}
	}
	if len(c.out) > 0 { // the socket is full: wait for room, reading nothing meanwhile
		if err := l.watch(c, unix.EPOLL_CTL_MOD, unix.EPOLLOUT); err != nil {
			l.close(c)
		}
		return
	}
	c.rd.shrink()
}

// closeAfterReply closes a connection once its replies are out (QUIT, a
// protocol error): now if the socket takes them, else when ready has
// written the rest (Redis's CLIENT_CLOSE_AFTER_REPLY); its input is not
// read meanwhile. op adds the socket to the epoll set (a connection back
// from a blocking command) or changes what it waits for.
func (l *eventLoop) closeAfterReply(c *client, op int) {
	c.quit = true
	if c.flush() != nil || len(c.out) == 0 {
		l.close(c)
		return
	}
	if err := l.watch(c, op, unix.EPOLLOUT); err != nil {
		l.close(c)
	}
}

// park runs a blocking command in a goroutine of its own; the connection
// leaves the epoll set until it is done, then comes back through post.
func (l *eventLoop) park(c *client, cmd *command, args [][]byte) bool {
	if err := l.watch(c, unix.EPOLL_CTL_DEL, 0); err != nil {
		return false // run it on the loop
	}
	c.busy = true
	go func() {
		cmd.run(l.s, c, args)
		l.post(c) // never refused: the loop waits for its busy connections
	}()
	return true
}

// drain takes what post and stop left.
func (l *eventLoop) drain() {
	var buf [8]byte
	unix.Read(l.wake, buf[:])
	l.mu.Lock()
	l.batch, l.incoming = l.incoming, l.batch[:0]
	stopping := l.stopping
	l.mu.Unlock()
	for i, c := range l.batch {
		l.batch[i] = nil
		if c.busy {
			l.resume(c)
			continue
		}
		l.conns[int32(c.fd)] = c
		if stopping {
			l.close(c)
		} else if err := l.watch(c, unix.EPOLL_CTL_ADD, unix.EPOLLIN); err != nil {
			l.s.logf("epoll_ctl: %v: closing connection %d", err, c.id)
			l.close(c)
		}
	}
	if stopping && !l.stopSeen {
		l.stopSeen = true
		for _, c := range l.conns {
			if !c.busy {
				l.close(c)
			}
		}
	}
}

// resume takes back a connection whose blocking command is done.
func (l *eventLoop) resume(c *client) {
	c.busy = false
	if l.stopSeen {
		c.flush()
		l.close(c)
		return
	}
	if c.quit {
		l.closeAfterReply(c, unix.EPOLL_CTL_ADD)
		return
	}
	if err := l.watch(c, unix.EPOLL_CTL_ADD, unix.EPOLLIN); err != nil {
		l.close(c)
		return
	}
	l.serve(c)
}

// watch adds a connection to the epoll set, changes what it waits for, or
// removes it.
func (l *eventLoop) watch(c *client, op int, events uint32) error {
	return unix.EpollCtl(l.epfd, op, c.fd, &unix.EpollEvent{Events: events, Fd: int32(c.fd)})
}

// close closes a connection of the loop (the socket leaves the epoll set
// as it closes: the loop holds its only descriptor).
func (l *eventLoop) close(c *client) {
	delete(l.conns, int32(c.fd))
	l.s.forget(c)
}

// exit ends the loop: nothing is posted to it any more, and nothing
// kicks it (post and stop kick under mu, only while closed is false).
func (l *eventLoop) exit() {
	l.mu.Lock()
	l.closed = true
	late := l.incoming
	l.incoming = nil
	l.mu.Unlock()
	for _, c := range late { // posted after the stop was seen, not yet taken
		l.s.forget(c)
	}
	l.sr.Close()
	unix.Close(l.wake)
	unix.Close(l.epfd)
}

// fdConn is a socket an event loop owns: non-blocking reads and writes.
type fdConn struct{ fd int }

// Read reads what the socket has: nothing (and no error) if it has
// nothing yet, io.EOF once the peer closed it.
func (f *fdConn) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, p)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write writes what the socket takes, and reports how much.
func (f *fdConn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(f.fd, p[done:])
		if n > 0 {
			done += n
		}
		switch {
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return done, nil
		case err != nil:
			return done, err
		}
	}
	return done, nil
}

// Close closes the socket; again is a no-op.
func (f *fdConn) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := unix.Close(f.fd)
	f.fd = -1
	return err
}
