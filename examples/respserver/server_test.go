package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/redis/go-redis/v9"
)

// startServer runs a server on 127.0.0.1:0 and returns a go-redis client.
func startServer(t *testing.T) (*server, *redis.Client, string) {
	t.Helper()
	st, err := store.Open(store.Options{Arena: folio.Config{Size: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(st, filepath.Join(t.TempDir(), "dump.kv"))
	s.logf = t.Logf
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() {
		c.Close()
		s.close()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return s, c, ln.Addr().String()
}

func TestCommands(t *testing.T) {
	_, c, _ := startServer(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if v, err := c.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING: %q %v", v, err)
	}
	must(c.Set(ctx, "a", "1", 0).Err())
	if v, err := c.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Fatalf("GET: %q %v", v, err)
	}
	if _, err := c.Get(ctx, "missing").Result(); err != redis.Nil {
		t.Fatalf("GET missing: %v", err)
	}
	must(c.Set(ctx, "empty", "", 0).Err())
	if v, err := c.Get(ctx, "empty").Result(); err != nil || v != "" {
		t.Fatalf("GET empty: %q %v", v, err)
	}
	if n, err := c.Incr(ctx, "a").Result(); err != nil || n != 2 {
		t.Fatalf("INCR: %d %v", n, err)
	}
	if n, err := c.Incr(ctx, "counter").Result(); err != nil || n != 1 {
		t.Fatalf("INCR new: %d %v", n, err)
	}
	must(c.Set(ctx, "s", "abc", 0).Err())
	if err := c.Incr(ctx, "s").Err(); err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Fatalf("INCR of a string: %v", err)
	}
	must(c.MSet(ctx, "x", "1", "y", "2").Err())
	if v, err := c.MGet(ctx, "x", "nope", "y").Result(); err != nil || fmt.Sprint(v) != "[1 <nil> 2]" {
		t.Fatalf("MGET: %v %v", v, err)
	}
	if n, err := c.Exists(ctx, "x", "y", "nope").Result(); err != nil || n != 2 {
		t.Fatalf("EXISTS: %d %v", n, err)
	}
	if n, err := c.Del(ctx, "x", "nope").Result(); err != nil || n != 1 {
		t.Fatalf("DEL: %d %v", n, err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 5 { // a, empty, counter, s, y
		t.Fatalf("DBSIZE: %d %v", n, err)
	}
	must(c.Save(ctx).Err())
	if ts, err := c.LastSave(ctx).Result(); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Fatalf("LASTSAVE: %d %v", ts, err)
	}
	info, err := c.Info(ctx, "persistence", "stats").Result()
	must(err)
	for _, f := range []string{"rdb_bgsave_in_progress:0", "rdb_last_bgsave_status:ok", "rdb_last_cow_size:", "current_cow_peak:", "latest_fork_usec:", "rdb_saves:1"} {
		if !strings.Contains(info, f) {
			t.Errorf("INFO lacks %q:\n%s", f, info)
		}
	}
	must(c.FlushAll(ctx).Err())
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after FLUSHALL: %d %v", n, err)
	}
	if err := c.Do(ctx, "NOSUCH", "x").Err(); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := c.Do(ctx, "GET").Err(); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
		t.Fatalf("GET without a key: %v", err)
	}
	if v, err := c.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING after errors: %q %v", v, err)
	}
}

// TestBGSAVEUnderWrites runs BGSAVE while clients write: each value names
// its key, so the saved image must hold only whole, matching values, and
// every key written before the BGSAVE.
func TestBGSAVEUnderWrites(t *testing.T) {
	s, c, _ := startServer(t)
	ctx := context.Background()
	const keys = 2000
	for i := range keys {
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("k%d=0", i), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes [4]int
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("k%d", (i*7+w*13)%keys)
				if err := c.Set(ctx, k, fmt.Sprintf("%s=%d", k, i), 0).Err(); err != nil {
					t.Error(err)
					return
				}
				writes[w]++
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if v, err := c.BgSave(ctx).Result(); err != nil || !strings.Contains(v, "started") {
		t.Fatalf("BGSAVE: %q %v", v, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(ctx, "persistence").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "rdb_bgsave_in_progress:0") {
			if !strings.Contains(info, "rdb_last_bgsave_status:ok") {
				t.Fatalf("BGSAVE failed:\n%s", info)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("BGSAVE did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("writes during the test: %v", writes)
	l, err := store.LoadFile(s.dump, store.Options{Arena: folio.Config{Size: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Len() != keys {
		t.Fatalf("the image holds %d keys, want %d", l.Len(), keys)
	}
	l.Range(func(k, v []byte) bool {
		if !strings.HasPrefix(string(v), string(k)+"=") {
			t.Errorf("key %q holds %q", k, v)
		}
		return true
	})
}

// TestBadInput sends malformed requests on a raw connection: each gets an
// error reply; the server (and, for mere command errors, the connection)
// keeps working.
func TestBadInput(t *testing.T) {
	_, c, addr := startServer(t)
	send := func(req string, lines int) []string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		var out []string
		for range lines {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", out, err)
			}
			out = append(out, strings.TrimRight(l, "\r\n"))
		}
		return out
	}
	for _, tc := range []struct {
		name, req string
		want      []string
	}{
		{"unknown command, then PING on the same connection", "*1\r\n$5\r\nBOGUS\r\nPING\r\n", []string{"-ERR unknown command 'BOGUS'", "+PONG"}},
		{"wrong arity, then PING", "*1\r\n$3\r\nSET\r\n*1\r\n$4\r\nPING\r\n", []string{"-ERR wrong number of arguments", "+PONG"}},
		{"inline commands", "SET a b\r\nGET a\r\n", []string{"+OK", "$1", "b"}},
		{"a bad multibulk length", "*abc\r\n", []string{"-ERR Protocol error: invalid multibulk length"}},
		{"a bulk length over the limit", "*1\r\n$999999999999\r\n", []string{"-ERR Protocol error: invalid bulk length"}},
		{"a negative bulk length", "*1\r\n$-5\r\n", []string{"-ERR Protocol error: invalid bulk length"}},
		{"a missing $", "*1\r\n+PING\r\n", []string{"-ERR Protocol error: expected '$'"}},
		{"a bulk string without CRLF", "*1\r\n$4\r\nPINGxx", []string{"-ERR Protocol error: bulk string not terminated"}},
		{"too many arguments", "*99999999\r\n", []string{"-ERR Protocol error: invalid multibulk length"}},
		{"an inline line too long", strings.Repeat("a", 70<<10) + "\r\n", []string{"-ERR Protocol error: too big inline request"}},
	} {
		got := send(tc.req, len(tc.want))
		for i, w := range tc.want {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("%s: reply %d is %q, want %q...", tc.name, i, got[i], w)
			}
		}
	}
	// The server goes on serving.
	if v, err := c.Ping(context.Background()).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING after bad input: %q %v", v, err)
	}
	if v, err := c.Get(context.Background(), "a").Result(); err != nil || v != "b" {
		t.Fatalf("GET after bad input: %q %v", v, err)
	}
}
