package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestGoroutinePerConnection runs the command tables and the malformed
// requests with a goroutine per connection (-loops 0, and the server's
// only way off Linux): both ways must serve alike.
func TestGoroutinePerConnection(t *testing.T) {
	ts := startServerWith(t, "", "", 8, 0, nil)
	if len(ts.srv.loops) != 0 {
		t.Fatalf("%d event loops; want none", len(ts.srv.loops))
	}
	for name, steps := range map[string][]step{"strings": stringSteps, "keys": keySteps, "server": serverSteps} {
		t.Run(name, func(t *testing.T) {
			if err := ts.c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			run(t, ts.c, steps)
		})
	}
	testLargeValues(t, ts.c)
	checkBadInput(t, ts.addr)
}

// TestSlowReader: a client that pipelines more replies than its socket
// holds and reads none of them yet. Its loop keeps what the socket does
// not take and writes it when there is room, in order; meanwhile it goes
// on serving the loop's other connections.
func TestSlowReader(t *testing.T) {
	ts := startServerWith(t, "", "", 8, 1, nil)
	ctx := context.Background()
	value := strings.Repeat("v", 256<<10)
	if err := ts.c.Set(ctx, "big", value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 200 // 50 MiB of replies: far more than loopback buffers hold
	var req []byte
	for i := range n {
		req = fmt.Appendf(req, "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n*2\r\n$4\r\nECHO\r\n$%d\r\n%d\r\n", len(fmt.Sprint(i)), i)
	}
	go conn.Write(req)
	// A client that goes away with its replies pending: its socket is
	// closed (EPIPE or ECONNRESET, no SIGPIPE), nothing else.
	gone, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	gone.Write(req)
	time.Sleep(50 * time.Millisecond) // let the loop fill its socket (not asserted: either way it must survive)
	gone.Close()
	// The loop's other connections are served while this one's replies wait.
	for i := range 50 {
		other := redis.NewClient(&redis.Options{Addr: ts.addr, Protocol: 2, DisableIdentity: true, PoolSize: 1})
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := other.Set(cctx, fmt.Sprint("k", i), i, 0).Err()
		cancel()
		other.Close()
		if err != nil {
			t.Fatalf("another connection, while a slow reader's replies wait: %v", err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(conn, 1<<20)
	want := "$" + fmt.Sprint(len(value)) + "\r\n" + value + "\r\n"
	got := make([]byte, len(want))
	for i := range n {
		if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
			t.Fatalf("reply %d of GET big: %.40q, %v", i, got, err)
		}
		echo := fmt.Sprintf("$%d\r\n%d\r\n", len(fmt.Sprint(i)), i)
		e := make([]byte, len(echo))
		if _, err := io.ReadFull(r, e); err != nil || string(e) != echo {
			t.Fatalf("reply %d of ECHO: %q, %v; want %q", i, e, err, echo)
		}
	}
}

// TestBlockingCommandOffLoop: a SAVE runs off its event loop. While it is
// held, another connection of the same (only) loop is served; the SAVE's
// own connection gets its reply, then the commands it pipelined after it.
func TestBlockingCommandOffLoop(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	ts := startServerWith(t, "", "", 8, 1, func(s *server) {
		s.beforeSave = func() {
			close(entered)
			<-release
		}
	})
	t.Cleanup(unblock) // runs before the server's stop, which waits for the SAVE
	ctx := context.Background()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "SAVE\r\nSET after save\r\nGET after\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("SAVE did not start")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ts.c.Set(cctx, "during", "the save", 0).Err(); err != nil {
		t.Fatalf("SET on the same loop during a SAVE: %v", err)
	}
	if v, err := ts.c.Get(cctx, "during").Result(); err != nil || v != "the save" {
		t.Fatalf("GET on the same loop during a SAVE: %q, %v", v, err)
	}
	unblock()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	for _, want := range []string{"+OK", "+OK", "$4", "save"} {
		l, err := r.ReadString('\n')
		if err != nil || strings.TrimRight(l, "\r\n") != want {
			t.Fatalf("after the SAVE: %q, %v; want %q", l, err, want)
		}
	}
}

// fullSocket is a socket that takes nothing: every write is EAGAIN.
type fullSocket struct{ writes int }

func (f *fullSocket) Read(p []byte) (int, error)  { return 0, nil }
func (f *fullSocket) Write(p []byte) (int, error) { f.writes++; return 0, nil }
func (f *fullSocket) Close() error                { return nil }

// TestKeysToFullSocket: KEYS for a client whose socket takes nothing (off
// the loop, its writes are non-blocking) tries a write per flushAt bytes
// of its reply, not one per key, and keeps the whole reply.
func TestKeysToFullSocket(t *testing.T) {
	ts := startServer(t, "", "")
	const n = 20_000
	for i := range n {
		if err := ts.st.Put(fmt.Appendf(nil, "key:%06d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	sock := &fullSocket{}
	c := newClient(0, sock)
	cmdKeys(ts.srv, c, [][]byte{[]byte("KEYS"), []byte("*")})
	if max := len(c.out)/flushAt + 1; sock.writes > max {
		t.Errorf("KEYS of %d keys (%d bytes) to a full socket tried %d writes; want at most %d", n, len(c.out), sock.writes, max)
	}
	if want := fmt.Sprintf("*%d\r\n", n); !strings.HasPrefix(string(c.out), want) || strings.Count(string(c.out), "\r\nkey:") != n {
		t.Errorf("the reply kept is not the whole KEYS reply (%d bytes)", len(c.out))
	}
}
