package main

import (
	"context"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallSendBuffers makes every accepted socket's send buffer small (and
// fixed: no autotuning), so that a reply of tens of KiB does not fit in
// it while its client does not read.
func smallSendBuffers(ln net.Listener) net.Listener { return smallSndbufListener{ln} }

type smallSndbufListener struct{ net.Listener }

func (l smallSndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// dialSmallWindow dials addr with a small receive buffer: what the server
// sends beyond it and its own send buffer waits in the server.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitTotals waits until the server's counters satisfy ok.
func waitTotals(t *testing.T, s *server, what string, ok func(totalCounters) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(s.totals()); {
		if time.Now().After(deadline) {
			t.Fatalf("the server never got to %s: %+v", what, s.totals())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCloseAfterReply: a connection closed by QUIT or by a protocol error
// gets every reply before the close, the +OK or the error included, even
// when its socket cannot take them at once (its client reads them only
// after the server has run the QUIT). Redis closes such a client only
// once its replies are written (CLIENT_CLOSE_AFTER_REPLY).
func TestCloseAfterReply(t *testing.T) {
	value := strings.Repeat("v", 60<<10) // under flushAt: it waits for the QUIT in the output buffer
	bulk := "$61440\r\n" + value + "\r\n"
	for _, loops := range []int{1, 0} {
		ts := startServerListener(t, "", "", 8, loops, nil, smallSendBuffers)
		if err := ts.c.Set(context.Background(), "v", value, 0).Err(); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, req, want string
			ran             func(before, now totalCounters) bool
		}{
			{"QUIT", "GET v\r\nQUIT\r\n", bulk + "+OK\r\n",
				func(b, n totalCounters) bool { return n.commands >= b.commands+2 }},
			{"QUIT after a blocking command", "SAVE\r\nGET v\r\nQUIT\r\n", "+OK\r\n" + bulk + "+OK\r\n",
				func(b, n totalCounters) bool { return n.commands >= b.commands+3 }},
			{"a protocol error", "GET v\r\n*1\r\n$-5\r\n", bulk + "-ERR Protocol error: invalid bulk length\r\n",
				func(b, n totalCounters) bool { return n.errors >= b.errors+1 }},
		} {
			before := ts.srv.totals()
			conn := dialSmallWindow(t, ts.addr)
			if _, err := io.WriteString(conn, tc.req); err != nil {
				t.Fatal(err)
			}
			waitTotals(t, ts.srv, tc.name, func(now totalCounters) bool { return tc.ran(before, now) })
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(conn)
			conn.Close()
			if err != nil || string(got) != tc.want {
				t.Errorf("loops %d, %s: got %d bytes (%.20q...%q), %v; want the %d bytes of the replies, then the close",
					loops, tc.name, len(got), got, got[max(0, len(got)-50):], err, len(tc.want))
			}
		}
		ts.stop(t)
	}
}
