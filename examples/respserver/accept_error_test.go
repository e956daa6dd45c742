package main

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// failingListener fails its next Accept with err once armed, as accept
// does when the process is out of file descriptors.
type failingListener struct {
	net.Listener
	err   error
	armed atomic.Bool
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.armed.CompareAndSwap(true, false) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", l.err)}
	}
	return l.Listener.Accept()
}

// TestAcceptOutOfDescriptors: a flood of connections that exhausts the
// process's file descriptors (EMFILE, ENFILE) must not end the server:
// it logs, waits a little and accepts again once descriptors are back,
// as Redis does. serve used to return the error, and main exits on it.
func TestAcceptOutOfDescriptors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE} {
		for _, loops := range []int{1, 0} {
			var fl *failingListener
			ts := startServerListener(t, "", "", 8, loops, nil, func(ln net.Listener) net.Listener {
				fl = &failingListener{Listener: ln, err: errno}
				return fl
			})
			ctx := context.Background()
			if err := ts.c.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			// The Accept in flight takes the first connection; the next one
			// fails; the second connection comes after the failure.
			fl.armed.Store(true)
			for i := range 2 {
				c := redis.NewClient(&redis.Options{Addr: ts.addr, Protocol: 2, DisableIdentity: true, PoolSize: 1, MaxRetries: -1})
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := c.Ping(cctx).Err()
				cancel()
				c.Close()
				if err != nil {
					select {
					case serr := <-ts.done:
						ts.done <- nil // for ts.stop: the error is reported here
						t.Fatalf("loops %d, %v: connection %d: %v; serve returned %v", loops, errno, i, err, serr)
					default:
						t.Fatalf("loops %d, %v: connection %d: %v", loops, errno, i, err)
					}
				}
			}
			if fl.armed.Load() {
				t.Fatalf("loops %d, %v: the failing Accept never ran", loops, errno)
			}
			ts.stop(t)
		}
	}
}
