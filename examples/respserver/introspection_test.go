package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestIntrospection: INFO's sections and fields, COMMAND, HELLO, CLIENT
// and LASTSAVE, as clients and tools read them.
func TestIntrospection(t *testing.T) {
	ts := startServer(t, "", "")
	ctx := context.Background()
	ts.c.Set(ctx, "a", "1", 0)
	ts.c.Set(ctx, "b", "2", time.Hour)
	ts.c.Get(ctx, "a")
	ts.c.Get(ctx, "missing")

	all, err := ts.c.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"# Server\r\n", "redis_version:", "tcp_port:", "# Clients\r\n", "connected_clients:1\r\n",
		"# Memory\r\n", "used_memory:", "used_memory_rss:", "# Persistence\r\n", "rdb_bgsave_in_progress:0\r\n",
		"rdb_last_bgsave_status:ok\r\n", "rdb_changes_since_last_save:2\r\n", "aof_enabled:0\r\n", "# Stats\r\n",
		"keyspace_hits:1\r\n", "keyspace_misses:1\r\n", "latest_fork_usec:", "total_commands_processed:",
		"# Replication\r\n", "role:master\r\n", "# CPU\r\n", "used_cpu_sys:", "# Keyspace\r\n", "db0:keys=2,expires=1,"} {
		if !strings.Contains(all, f) {
			t.Errorf("INFO lacks %q", f)
		}
	}
	one, _ := ts.c.Info(ctx, "persistence").Result()
	if !strings.HasPrefix(one, "# Persistence\r\n") || strings.Contains(one, "# Server") {
		t.Errorf("INFO persistence:\n%s", one)
	}
	two, _ := ts.c.Info(ctx, "server", "keyspace").Result()
	if !strings.Contains(two, "# Server") || !strings.Contains(two, "# Keyspace") || strings.Contains(two, "# Memory") {
		t.Errorf("INFO server keyspace:\n%s", two)
	}
	if none, _ := ts.c.Info(ctx, "nosuchsection").Result(); none != "" {
		t.Errorf("INFO of an unknown section: %q", none)
	}

	n, err := ts.c.Do(ctx, "COMMAND", "COUNT").Int64()
	if err != nil || n != int64(len(commands)) || n < 45 {
		t.Fatalf("COMMAND COUNT: %d, %v", n, err)
	}
	if all, err := ts.c.Do(ctx, "COMMAND").Slice(); err != nil || len(all) != int(n) {
		t.Fatalf("COMMAND: %d entries, %v", len(all), err)
	}
	info, err := ts.c.Do(ctx, "COMMAND", "INFO", "get", "nosuch", "MSET").Slice()
	if err != nil || len(info) != 3 || info[1] != nil {
		t.Fatalf("COMMAND INFO: %#v, %v", info, err)
	}
	get := info[0].([]any)
	if get[0] != "get" || get[1] != int64(2) || get[3] != int64(1) || get[4] != int64(1) || get[5] != int64(1) {
		t.Errorf("COMMAND INFO get: %#v", get)
	}
	if mset := info[2].([]any); mset[1] != int64(-3) || mset[4] != int64(-1) || mset[5] != int64(2) {
		t.Errorf("COMMAND INFO mset: %#v", mset)
	}
	docs, err := ts.c.Do(ctx, "COMMAND", "DOCS", "set").Slice()
	if err != nil || len(docs) != 2 || docs[0] != "set" {
		t.Fatalf("COMMAND DOCS set: %#v, %v", docs, err)
	}
	d := docs[1].([]any)
	if len(d) != 8 || d[0] != "summary" || d[2] != "since" || d[3] != "1.0.0" || d[4] != "group" || d[5] != "string" {
		t.Errorf("COMMAND DOCS set: %#v", d)
	}
	// go-redis parses COMMAND as Redis 7 sends it.
	cmds, err := ts.c.Command(ctx).Result()
	if err != nil || cmds["set"] == nil || cmds["set"].Arity != -3 || cmds["get"].FirstKeyPos != 1 || !cmds["get"].ReadOnly {
		t.Fatalf("COMMAND through go-redis: %#v, %v", cmds["set"], err)
	}

	hello, err := ts.c.Do(ctx, "HELLO", "2", "SETNAME", "me").Slice()
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{}
	for i := 0; i+1 < len(hello); i += 2 {
		h[hello[i].(string)] = hello[i+1]
	}
	if h["server"] != "redis" || h["proto"] != int64(2) || h["mode"] != "standalone" || h["role"] != "master" || h["version"] != redisVersion {
		t.Errorf("HELLO 2: %#v", h)
	}
	run(t, ts.c, []step{
		{args: args("CLIENT", "GETNAME"), want: "me"},
		{args: args("CLIENT", "ID"), want: h["id"]},
		{args: args("CLIENT", "SETINFO", "LIB-NAME", "x"), want: "OK"},
		{args: args("HELLO", "2", "AUTH", "someone", "pw"), wantErr: "WRONGPASS"},
		{args: args("HELLO", "2", "AUTH", "default", "pw"), want: hello},
	})
	if list, _ := ts.c.Do(ctx, "CLIENT", "LIST").Text(); !strings.Contains(list, "name=me ") {
		t.Errorf("CLIENT LIST: %q", list)
	}
	if ts, err := ts.c.LastSave(ctx).Result(); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Errorf("LASTSAVE: %d, %v", ts, err)
	}
}

// TestDefaultProtocol: a client that asks for RESP3 first (go-redis's
// default) falls back to RESP2 and works.
func TestDefaultProtocol(t *testing.T) {
	ts := startServer(t, "", "")
	c := newDefaultClient(ts.addr)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET over a default client: %q, %v", v, err)
	}
}
