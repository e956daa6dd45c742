package main

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPostAfterLoopExit: a connection accepted as shutdown begins is
// posted to its loop, which takes it, closes it and exits (closing its
// eventfd) before post has woken it. Post's wake-up must not then write
// to the closed eventfd's number: whatever the process opened since under
// that number (a client's socket, a save's file) would get 8 bytes that
// are not its own. The test puts a pipe there, as a later open would.
func TestPostAfterLoopExit(t *testing.T) {
	var armed atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	ts := startServerWith(t, "", "", 8, 1, func(s *server) {
		s.afterPost = func() {
			if armed.CompareAndSwap(true, false) {
				close(reached)
				<-release
			}
		}
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	if err := ts.c.Ping(context.Background()).Err(); err != nil { // its connection is posted before the hook is armed
		t.Fatal(err)
	}
	ts.srv.connMu.Lock()
	wake := ts.srv.loops[0].wake
	ts.srv.connMu.Unlock()
	armed.Store(true)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the new connection was never posted")
	}
	// The accept goroutine has queued the connection and let go of the
	// loop's lock. Shut down: the loop takes the connection from its queue,
	// closes it and the others, and exits.
	ts.srv.shutdown()
	exited := make(chan struct{})
	go func() { ts.srv.wg.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not exit while a post was paused")
	}
	if _, err := unix.FcntlInt(uintptr(wake), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("the exited loop's eventfd number %d is in use (%v): cannot put the pipe there", wake, err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	if err := unix.Dup3(p[1], wake, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[1])
	defer unix.Close(wake)
	close(release)
	err = <-ts.done // serve returned: the post is over
	ts.done <- err  // for ts.stop
	var buf [64]byte
	if n, err := unix.Read(p[0], buf[:]); n > 0 || err != unix.EAGAIN {
		t.Errorf("after its loop exited, post wrote %x to the loop's old eventfd number %d (now a pipe) (read: %v)", buf[:max(n, 0)], wake, err)
	}
}
