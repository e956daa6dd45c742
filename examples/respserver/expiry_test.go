package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLazyExpiry: with the clock past a key's TTL, every command treats
// the key as absent, and the commands that meet it delete it.
func TestLazyExpiry(t *testing.T) {
	ts := startServer(t, "", "")
	ctx := context.Background()
	for i := range 10 {
		if err := ts.c.Set(ctx, fmt.Sprintf("lazy:%d", i), "v", 10*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ts.c.Set(ctx, "keep", "v", 0)
	ts.clock.advance(9999 * time.Millisecond)
	run(t, ts.c, []step{
		{args: args("GET", "lazy:0"), want: "v"},
		{args: args("PTTL", "lazy:0"), want: int64(1)},
		{args: args("DBSIZE"), want: int64(11)},
	})
	ts.clock.advance(time.Millisecond) // exactly the expire time: expired
	run(t, ts.c, []step{
		{args: args("GET", "lazy:0")},
		{args: args("EXISTS", "lazy:1"), want: int64(0)},
		{args: args("TTL", "lazy:2"), want: int64(-2)},
		{args: args("STRLEN", "lazy:3"), want: int64(0)},
		{args: args("MGET", "lazy:4", "keep"), want: list(nil, "v")},
		{args: args("INCR", "lazy:5"), want: int64(1)}, // a new key
		{args: args("TTL", "lazy:5"), want: int64(-1)},
		{args: args("APPEND", "lazy:6", "x"), want: int64(1)},
		{args: args("SET", "lazy:7", "w", "NX", "GET")},
		{args: args("TYPE", "lazy:8"), want: "none"},
		{args: args("EXPIRE", "lazy:9", "100"), want: int64(0)},
		{args: args("PERSIST", "lazy:9"), want: int64(0)},
		{args: args("KEYS", "lazy:*"), want: list("lazy:5", "lazy:6", "lazy:7"), sorted: true},
	})
	// Each command that met an expired key deleted it: only the keys
	// re-created and "keep" are left, none past its TTL.
	if n, err := ts.c.DBSize(ctx).Result(); err != nil || n != 4 {
		t.Fatalf("DBSIZE after the lazy expiry: %d, %v; want 4", n, err)
	}
	info, _ := ts.c.Info(ctx, "stats", "keyspace").Result()
	for _, f := range []string{"expired_keys:10\r\n", "db0:keys=4,expires=0,"} {
		if !strings.Contains(info, f) {
			t.Errorf("INFO lacks %q:\n%s", f, info)
		}
	}
}

// TestActiveExpiry: the cron deletes the keys past their TTL that nobody
// reads, sampling as Redis does, and leaves the others.
func TestActiveExpiry(t *testing.T) {
	ts := startServer(t, "", "")
	ctx := context.Background()
	const n = 2000
	pipe := ts.c.Pipeline()
	for i := range n {
		ttl := time.Second
		if i%4 == 0 {
			ttl = time.Hour
		}
		pipe.Set(ctx, fmt.Sprintf("k:%d", i), "v", ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	ts.c.Set(ctx, "persistent", "v", 0)
	if err := ts.c.ConfigSet(ctx, "hz", "100").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the cron runs, nothing has expired
	if got, _ := ts.c.DBSize(ctx).Result(); got != n+1 {
		t.Fatalf("DBSIZE before the TTLs: %d, want %d", got, n+1)
	}
	ts.clock.advance(2 * time.Second)
	want := int64(n/4 + 1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := ts.c.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DBSIZE %d after 20 s of active expiry, want %d", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	info, _ := ts.c.Info(ctx, "stats", "keyspace").Result()
	for _, f := range []string{fmt.Sprintf("expired_keys:%d\r\n", n-n/4), fmt.Sprintf("db0:keys=%d,expires=%d,", want, n/4)} {
		if !strings.Contains(info, f) {
			t.Errorf("INFO lacks %q:\n%s", f, info)
		}
	}
	// The keys left are the right ones, with their TTLs.
	for i := 0; i < n; i += 4 {
		if ttl, err := ts.c.TTL(ctx, fmt.Sprintf("k:%d", i)).Result(); err != nil || ttl <= 0 {
			t.Fatalf("k:%d: TTL %v, %v", i, ttl, err)
		}
	}
}
