package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/redis/go-redis/v9"
)

// writers are clients writing to a server until halt: client w's i-th
// write (i from 1) is the write function's call (w, i).
type writers struct {
	stop atomic.Bool
	wg   sync.WaitGroup
	n    atomic.Int64 // writes made
}

// startWriters starts n writers on ts; an error of one fails the test
// and ends that writer.
func startWriters(t *testing.T, ts *testServer, n int, write func(c *redis.Client, w, i int) error) *writers {
	ws := &writers{}
	for w := range n {
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			c := redis.NewClient(&redis.Options{Addr: ts.addr, Protocol: 2, DisableIdentity: true})
			defer c.Close()
			for i := 1; !ws.stop.Load(); i++ {
				if err := write(c, w, i); err != nil {
					t.Error(err)
					return
				}
				ws.n.Add(1)
			}
		}()
	}
	return ws
}

// reach waits until the writers have made n writes in all.
func (ws *writers) reach(n int64) {
	for ws.n.Load() < n {
		time.Sleep(time.Millisecond)
	}
}

// halt stops the writers and waits for them.
func (ws *writers) halt() {
	ws.stop.Store(true)
	ws.wg.Wait()
}

// waitBgsave polls INFO until no background save runs, and fails the test
// if the last one did not succeed.
func waitBgsave(t *testing.T, c *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(context.Background(), "persistence").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "rdb_bgsave_in_progress:0") {
			if !strings.Contains(info, "rdb_last_bgsave_status:ok") {
				t.Fatalf("the background save failed:\n%s", info)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the background save did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

// state reads every key with its value and expire time (PEXPIRETIME).
func state(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, k := range keys {
		v, err := c.Get(ctx, k).Result()
		if err != nil {
			t.Fatal(k, err)
		}
		at, err := c.Do(ctx, "PEXPIRETIME", k).Int64()
		if err != nil {
			t.Fatal(k, err)
		}
		m[k] = fmt.Sprintf("%s @%d", v, at)
	}
	return m
}

// TestBgsaveAndRestart: BGSAVE while clients write; the image holds whole
// values of its instant, TTLs included; then SHUTDOWN saves, and a server
// started over the same directory loads exactly the state it had.
func TestBgsaveAndRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, "3600 1")
	ctx := context.Background()
	const keys, withTTL = 3000, 200
	seedKeys(ctx, t, ts, keys, withTTL)
	ws := startWriters(t, ts, 4, func(c *redis.Client, w, i int) error {
		k := fmt.Sprintf("k%d", (i*7+w*13)%keys)
		return c.Set(ctx, k, fmt.Sprintf("%s=%d", k, i), 0).Err()
	})
	ws.reach(500)
	if v, err := ts.c.BgSave(ctx).Result(); err != nil || v != "Background saving started" {
		t.Fatalf("BGSAVE: %q, %v", v, err)
	}
	atSave := ws.n.Load()
	waitBgsave(t, ts.c)
	ws.reach(atSave + 500) // some writes after the save, for the restart to carry
	ws.halt()
	image, err := os.ReadFile(filepath.Join(dir, "dump.kv"))
	if err != nil {
		t.Fatal(err)
	}
	want := state(t, ts.c)
	if len(want) != keys+withTTL {
		t.Fatalf("%d keys before the restart, want %d", len(want), keys+withTTL)
	}

	// The background image: every key, each value whole, the TTLs.
	l, err := store.Load(strings.NewReader(string(image)), store.Options{Arena: folio.Config{Size: 256 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = sn.RangeTTL(func(k, v []byte, at int64) bool {
		n++
		switch {
		case strings.HasPrefix(string(k), "ttl"):
			var i int64
			fmt.Sscanf(string(k), "ttl%d", &i)
			if string(v) != "v" || at != year2100*1000+i {
				t.Errorf("%s: %q expiring at %d in the image", k, v, at)
			}
		case !strings.HasPrefix(string(v), string(k)+"=") || at != 0:
			t.Errorf("%s holds %q (expiring at %d) in the image", k, v, at)
		}
		return true
	})
	sn.Close()
	l.Close()
	if err != nil || n != keys+withTTL {
		t.Fatalf("the image holds %d keys (%v), want %d", n, err, keys+withTTL)
	}

	// SHUTDOWN saves; the next server loads exactly that state.
	if err := ts.c.Do(ctx, "SHUTDOWN").Err(); err == nil { // the connection closes, no reply
		t.Fatal("SHUTDOWN replied")
	}
	ts.stop(t)
	again := startServer(t, dir, "3600 1")
	got := state(t, again.c)
	if len(got) != len(want) {
		t.Fatalf("%d keys after the restart, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: %q after the restart, want %q", k, got[k], v)
		}
	}
	info, _ := again.c.Info(ctx, "persistence").Result()
	if !strings.Contains(info, fmt.Sprintf("rdb_last_load_keys_loaded:%d", keys+withTTL)) {
		t.Errorf("INFO after the restart:\n%s", info)
	}
}

// TestSaveCommands: SAVE, BGSAVE, BGSAVE SCHEDULE, LASTSAVE, the save
// points, and FLUSHALL's save.
func TestSaveCommands(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, "")
	ctx := context.Background()
	dump := filepath.Join(dir, "dump.kv")
	before, _ := ts.c.LastSave(ctx).Result()
	time.Sleep(1100 * time.Millisecond) // LASTSAVE counts seconds
	ts.c.Set(ctx, "a", "1", 0)
	if err := ts.c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if after, _ := ts.c.LastSave(ctx).Result(); after <= before {
		t.Errorf("LASTSAVE %d after SAVE, %d before", after, before)
	}
	if _, err := os.Stat(dump); err != nil {
		t.Fatal(err)
	}
	info, _ := ts.c.Info(ctx, "persistence").Result()
	if !strings.Contains(info, "rdb_changes_since_last_save:0\r\n") || !strings.Contains(info, "rdb_saves:1\r\n") {
		t.Errorf("INFO after SAVE:\n%s", info)
	}
	// BGSAVE twice in a row: the second is refused, or scheduled.
	if err := ts.c.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r := ts.c.Do(ctx, "BGSAVE")
	if err := r.Err(); err != nil && err.Error() != "ERR Background save already in progress" {
		t.Fatalf("a second BGSAVE: %v", err)
	}
	if v, err := ts.c.Do(ctx, "BGSAVE", "SCHEDULE").Text(); err != nil ||
		v != "Background saving scheduled" && v != "Background saving started" {
		t.Fatalf("BGSAVE SCHEDULE: %q, %v", v, err)
	}
	waitBgsave(t, ts.c)
	// A save point: one change in a second.
	if err := ts.c.ConfigSet(ctx, "save", "1 1").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := ts.c.ConfigGet(ctx, "save").Result(); got["save"] != "1 1" {
		t.Fatalf("CONFIG GET save: %v", got)
	}
	saves := func() string {
		info, _ := ts.c.Info(ctx, "persistence").Result()
		for _, l := range strings.Split(info, "\r\n") {
			if strings.HasPrefix(l, "rdb_saves:") {
				return l
			}
		}
		return ""
	}
	n0 := saves()
	ts.c.Set(ctx, "b", "2", 0)
	deadline := time.Now().Add(20 * time.Second)
	for saves() == n0 {
		if time.Now().After(deadline) {
			t.Fatal("the save point did not save")
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitBgsave(t, ts.c)
	l, err := store.LoadFile(dump, store.Options{Arena: folio.Config{Size: 256 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := l.Get([]byte("b")); err != nil || string(v) != "2" {
		t.Errorf("the save point's image: b = %q, %v", v, err)
	}
	l.Close()
	// FLUSHALL with save points saves the empty store.
	if err := ts.c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitBgsave(t, ts.c)
	if l, err := store.LoadFile(dump, store.Options{Arena: folio.Config{Size: 256 << 20}}); err != nil || l.Len() != 0 {
		t.Errorf("the image after FLUSHALL: %v", err)
	} else {
		l.Close()
	}
	// A save that cannot write: SAVE is an error, BGSAVE's status says so.
	if err := ts.c.ConfigSet(ctx, "save", "").Err(); err != nil {
		t.Fatal(err)
	}
	ts.srv.cfg.mu.Lock()
	ts.srv.cfg.dir = filepath.Join(dir, "gone")
	ts.srv.cfg.mu.Unlock()
	if err := ts.c.Save(ctx).Err(); err == nil {
		t.Error("SAVE into a missing directory succeeded")
	}
	ts.c.BgSave(ctx)
	deadline = time.Now().Add(10 * time.Second)
	for {
		info, _ := ts.c.Info(ctx, "persistence").Result()
		if strings.Contains(info, "rdb_bgsave_in_progress:0") && strings.Contains(info, "rdb_last_bgsave_status:err") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a failed BGSAVE:\n%s", info)
		}
		time.Sleep(time.Millisecond)
	}
	// SHUTDOWN refuses when the final save fails, unless NOSAVE or FORCE.
	run(t, ts.c, []step{
		{args: args("SHUTDOWN", "SAVE"), wantErr: "ERR Errors trying to SHUTDOWN. Check logs."},
		{args: args("SHUTDOWN", "ABORT"), wantErr: "ERR No shutdown in progress."},
		{args: args("SHUTDOWN", "NOSAVE", "SAVE"), wantErr: "ERR syntax error"},
		{args: args("PING"), want: "PONG"},
	})
}

// seedKeys sets keys k0..k(keys-1) to "kN=0" and withTTL keys ttl0.. with
// expiry times in 2100, in one pipeline.
func seedKeys(ctx context.Context, t *testing.T, ts *testServer, keys, withTTL int) {
	t.Helper()
	pipe := ts.c.Pipeline()
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		pipe.Set(ctx, k, k+"=0", 0)
	}
	for i := range withTTL {
		pipe.Do(ctx, "SET", fmt.Sprintf("ttl%d", i), "v", "PXAT", year2100*1000+i)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}
