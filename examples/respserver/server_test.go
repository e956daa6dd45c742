package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/redis/go-redis/v9"
)

// TestMain runs the server's main instead of the tests when a test starts
// this binary as a server (TestSignals).
func TestMain(m *testing.M) {
	if os.Getenv("RESPSERVER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeClock is the store's clock in tests: unix milliseconds, moved by hand.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) now() int64              { return c.ms.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// testServer is a server on 127.0.0.1:0 with a fake clock.
type testServer struct {
	srv   *server
	st    *store.Store
	c     *redis.Client
	addr  string
	dir   string
	clock *fakeClock
	done  chan error
}

// startServer runs a server over a new store (or the image in dir) with
// save points save.
func startServer(t *testing.T, dir, save string) *testServer {
	return startServerShards(t, dir, save, 8)
}

// startServerShards is startServer with a store of that many shards.
func startServerShards(t *testing.T, dir, save string, shards int) *testServer {
	t.Helper()
	return startServerWith(t, dir, save, shards, defaultLoops(), nil)
}

// startServerWith is startServer with a store of that many shards, that
// many event loops (0: a goroutine per connection), and setup run on the
// server before it serves.
func startServerWith(t *testing.T, dir, save string, shards, loops int, setup func(*server)) *testServer {
	t.Helper()
	return startServerListener(t, dir, save, shards, loops, setup, nil)
}

// startServerListener is startServerWith whose listener is wrapListener's
// (nil: the plain one), for a test that sets socket options on accept.
func startServerListener(t *testing.T, dir, save string, shards, loops int, setup func(*server), wrapListener func(net.Listener) net.Listener) *testServer {
	t.Helper()
	clock := &fakeClock{}
	clock.ms.Store(1_700_000_000_000)
	if dir == "" {
		dir = t.TempDir()
	}
	cfg, err := newConfig(dir, "dump.kv", save, 0, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	opts := store.Options{Arena: folio.Config{Size: 256 << 20}, Shards: shards, Clock: clock.now}
	chain := &store.Chain{Dir: dir, Name: "dump.kv"}
	st, loaded, err := loadImage(chain, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrapListener != nil {
		ln = wrapListener(ln)
	}
	ts := &testServer{srv: newServer(st, cfg), st: st, addr: ln.Addr().String(), dir: dir, clock: clock, done: make(chan error, 1)}
	ts.srv.logf = t.Logf
	ts.srv.ioLoops = loops
	if setup != nil {
		setup(ts.srv)
	}
	ts.srv.setChain(chain)
	if loaded {
		ts.srv.setLoaded(st.Len())
	}
	go func() { ts.done <- ts.srv.serve(ln) }()
	// One connection: CLIENT SETNAME and GETNAME must meet.
	ts.c = redis.NewClient(&redis.Options{Addr: ts.addr, Protocol: 2, DisableIdentity: true, PoolSize: 1})
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down (if it is not already) and closes the store.
func (ts *testServer) stop(t *testing.T) {
	if ts.st == nil {
		return
	}
	ts.c.Close()
	ts.srv.close()
	if err := <-ts.done; err != nil {
		t.Error(err)
	}
	ts.st.Close()
	ts.st = nil
}

// step is one command and the reply Redis documents for it: a value as
// go-redis's Do returns it (string, int64, []any, nil for a nil reply),
// or an error message prefix (wantErr).
type step struct {
	args    []any
	want    any
	wantErr string
	approx  int64 // an integer reply may be this much below want (a TTL against a real clock)
	sorted  bool  // an array reply in no particular order: compared sorted
}

func run(t *testing.T, c *redis.Client, steps []step) {
	t.Helper()
	ctx := context.Background()
	for _, s := range steps {
		got, err := c.Do(ctx, s.args...).Result()
		switch {
		case s.wantErr != "":
			if err == nil || !strings.HasPrefix(err.Error(), s.wantErr) {
				t.Errorf("%v: got %#v, %v; want the error %q", s.args, got, err, s.wantErr)
			}
		case err == redis.Nil:
			if s.want != nil {
				t.Errorf("%v: got nil; want %#v", s.args, s.want)
			}
		case err != nil:
			t.Errorf("%v: %v; want %#v", s.args, err, s.want)
		case s.sorted:
			g, _ := got.([]any)
			g = slices.Clone(g)
			slices.SortFunc(g, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
			if !reflect.DeepEqual(g, s.want) {
				t.Errorf("%v: got %#v; want %#v (in any order)", s.args, got, s.want)
			}
		case s.approx > 0:
			if n, ok := got.(int64); !ok || n > s.want.(int64) || n < s.want.(int64)-s.approx {
				t.Errorf("%v: got %#v; want %#v (less at most %d)", s.args, got, s.want, s.approx)
			}
		case !reflect.DeepEqual(got, s.want):
			t.Errorf("%v: got %#v; want %#v", s.args, got, s.want)
		}
	}
}

func args(a ...any) []any { return a }

func list(a ...any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

// TestStringCommands: the string commands, replies and errors as Redis's
// command docs give them.
func TestStringCommands(t *testing.T) {
	ts := startServer(t, "", "")
	run(t, ts.c, stringSteps)
	testLargeValues(t, ts.c)
}

// TestServerCommands: the connection and server commands.
func TestServerCommands(t *testing.T) {
	ts := startServer(t, "", "")
	run(t, ts.c, serverSteps)
	// Where this server differs from Redis by design: one database, RESP2.
	run(t, ts.c, []step{
		{args: args("SELECT", "1"), wantErr: "ERR DB index is out of range"},
		{args: args("HELLO", "3"), wantErr: "NOPROTO unsupported protocol version"},
		{args: args("HELLO", "x"), wantErr: "ERR Protocol version is not an integer or out of range"},
		{args: args("CONFIG", "SET", "save-delta", "maybe"), wantErr: "ERR CONFIG SET failed (possibly related to argument 'save-delta')"},
		{args: args("CONFIG", "SET", "appendonly", "yes"), wantErr: "ERR CONFIG SET failed (possibly related to argument 'appendonly')"},
		{args: args("CONFIG", "GET", "save-delta"), want: list("save-delta", "no")},
		{args: args("CONFIG", "SET", "save-delta", "yes"), want: "OK"},
		{args: args("CONFIG", "GET", "save-delta"), want: list("save-delta", "yes")},
		{args: args("CONFIG", "SET", "save-delta", "no"), want: "OK"},
	})
}

// TestAgainstRedis runs the same steps against redis-server, if it is
// installed: the replies this server's tests expect are Redis's.
func TestAgainstRedis(t *testing.T) {
	c := redisServer(t)
	for name, steps := range map[string][]step{"strings": stringSteps, "keys": keySteps, "server": serverSteps} {
		t.Run(name, func(t *testing.T) {
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			run(t, c, steps)
		})
	}
	testLargeValues(t, c)
	t.Run("bad input", func(t *testing.T) { checkBadInput(t, c.Options().Addr) })
}

var stringSteps = []step{
	{args: args("GET", "k")},
	{args: args("SET", "k", "v"), want: "OK"},
	{args: args("GET", "k"), want: "v"},
	{args: args("set", "k", "w"), want: "OK"}, // any case
	{args: args("GET", "k"), want: "w"},
	{args: args("SET", "empty", ""), want: "OK"},
	{args: args("GET", "empty"), want: ""},
	{args: args("SET", "", "empty key"), want: "OK"},
	{args: args("GET", ""), want: "empty key"},
	// NX, XX, GET.
	{args: args("SET", "k", "x", "NX")},
	{args: args("SET", "new", "1", "NX"), want: "OK"},
	{args: args("SET", "absent", "1", "XX")},
	{args: args("GET", "absent")},
	{args: args("SET", "k", "x", "XX"), want: "OK"},
	{args: args("SET", "k", "y", "GET"), want: "x"},
	{args: args("SET", "nokey", "y", "GET")},
	{args: args("GET", "nokey"), want: "y"},
	{args: args("SET", "k", "z", "NX", "GET"), want: "y"}, // not set, the old value
	{args: args("GET", "k"), want: "y"},
	{args: args("SET", "k", "v", "NX", "XX"), wantErr: "ERR syntax error"},
	{args: args("SET", "k", "v", "XX", "NX"), wantErr: "ERR syntax error"},
	{args: args("SET", "k", "v", "EX"), wantErr: "ERR syntax error"},
	{args: args("SET", "k", "v", "EX", "10", "PX", "10"), wantErr: "ERR syntax error"},
	{args: args("SET", "k", "v", "EX", "10", "KEEPTTL"), wantErr: "ERR syntax error"},
	{args: args("SET", "k", "v", "KEEPTTL", "EX", "10"), wantErr: "ERR syntax error"},
	{args: args("SET", "k", "v", "BOGUS"), wantErr: "ERR syntax error"},
	{args: args("SET", "k", "v", "EX", "ten"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("SET", "k", "v", "EX", "0"), wantErr: "ERR invalid expire time in 'set' command"},
	{args: args("SET", "k", "v", "PX", "-5"), wantErr: "ERR invalid expire time in 'set' command"},
	{args: args("SET", "k", "v", "EX", "9223372036854775"), wantErr: "ERR invalid expire time in 'set' command"},
	{args: args("SET", "k"), wantErr: "ERR wrong number of arguments for 'set' command"},
	{args: args("GET", "y"), want: nil},
	// SETNX, SETEX, PSETEX, GETSET, GETDEL.
	{args: args("SETNX", "k", "v"), want: int64(0)},
	{args: args("SETNX", "nx", "v"), want: int64(1)},
	{args: args("SETEX", "ex", "10", "v"), want: "OK"},
	{args: args("TTL", "ex"), want: int64(10)},
	{args: args("SETEX", "ex", "0", "v"), wantErr: "ERR invalid expire time in 'setex' command"},
	{args: args("PSETEX", "pex", "1500", "v"), want: "OK"},
	{args: args("PTTL", "pex"), want: int64(1500), approx: 100},
	{args: args("PSETEX", "pex", "-1", "v"), wantErr: "ERR invalid expire time in 'psetex' command"},
	{args: args("GETSET", "k", "g"), want: "y"},
	{args: args("GETSET", "gs", "g")},
	{args: args("GET", "gs"), want: "g"},
	{args: args("GETDEL", "gs"), want: "g"},
	{args: args("GETDEL", "gs")},
	{args: args("EXISTS", "gs"), want: int64(0)},
	// MGET, MSET, MSETNX.
	{args: args("MSET", "a", "1", "b", "2"), want: "OK"},
	{args: args("MGET", "a", "nope", "b"), want: list("1", nil, "2")},
	{args: args("MSET", "a", "1", "b"), wantErr: "ERR wrong number of arguments for 'mset' command"},
	{args: args("MSETNX", "c", "3", "a", "9"), want: int64(0)},
	{args: args("EXISTS", "c"), want: int64(0)},
	{args: args("MSETNX", "c", "3", "d", "4"), want: int64(1)},
	{args: args("MGET", "c", "d"), want: list("3", "4")},
	// INCR and its family.
	{args: args("INCR", "n"), want: int64(1)},
	{args: args("INCRBY", "n", "41"), want: int64(42)},
	{args: args("DECR", "n"), want: int64(41)},
	{args: args("DECRBY", "n", "50"), want: int64(-9)},
	{args: args("GET", "n"), want: "-9"},
	{args: args("INCRBY", "n", "x"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("INCR", "k"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("SET", "sp", " 1"), want: "OK"},
	{args: args("INCR", "sp"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("SET", "z", "01"), want: "OK"},
	{args: args("INCR", "z"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("SET", "max", "9223372036854775807"), want: "OK"},
	{args: args("INCR", "max"), wantErr: "ERR increment or decrement would overflow"},
	{args: args("SET", "min", "-9223372036854775808"), want: "OK"},
	{args: args("DECR", "min"), wantErr: "ERR increment or decrement would overflow"},
	{args: args("DECRBY", "n", "-9223372036854775808"), wantErr: "ERR decrement would overflow"},
	{args: args("INCRBY", "n", "9223372036854775808"), wantErr: "ERR value is not an integer or out of range"},
	// APPEND, STRLEN.
	{args: args("APPEND", "ap", "Hello"), want: int64(5)},
	{args: args("APPEND", "ap", " World"), want: int64(11)},
	{args: args("GET", "ap"), want: "Hello World"},
	{args: args("STRLEN", "ap"), want: int64(11)},
	{args: args("STRLEN", "nothing"), want: int64(0)},
}

// TestKeyCommands: the keyspace commands, with TTLs set and read at one
// instant (TestExpiry moves the clock).
func TestKeyCommands(t *testing.T) {
	ts := startServer(t, "", "")
	run(t, ts.c, keySteps)
}

const year2100 = 4102444800 // unix seconds

var keySteps = []step{
	{args: args("MSET", "a", "1", "b", "2", "c", "3"), want: "OK"},
	{args: args("DEL", "a", "nope"), want: int64(1)},
	{args: args("UNLINK", "b", "b"), want: int64(1)},
	{args: args("DEL"), wantErr: "ERR wrong number of arguments for 'del' command"},
	{args: args("EXISTS", "c", "c", "nope"), want: int64(2)},
	{args: args("TYPE", "c"), want: "string"},
	{args: args("TYPE", "nope"), want: "none"},
	{args: args("DBSIZE"), want: int64(1)},
	{args: args("MSET", "hello", "1", "hallo", "1", "hxllo", "1", "hllo", "1", "heeeello", "1", "hbllo", "1", "h*llo", "1"), want: "OK"},
	{args: args("KEYS", "h?llo"), want: list("h*llo", "hallo", "hbllo", "hello", "hxllo"), sorted: true},
	{args: args("KEYS", "h*llo"), want: list("h*llo", "hallo", "hbllo", "heeeello", "hello", "hllo", "hxllo"), sorted: true},
	{args: args("KEYS", "h[ae]llo"), want: list("hallo", "hello"), sorted: true},
	{args: args("KEYS", "h[^e]llo"), want: list("h*llo", "hallo", "hbllo", "hxllo"), sorted: true},
	{args: args("KEYS", "h[a-b]llo"), want: list("hallo", "hbllo"), sorted: true},
	{args: args("KEYS", `h\*llo`), want: list("h*llo"), sorted: true},
	{args: args("KEYS", "nothing*"), want: list()},
	{args: args("KEYS", "*"), want: list("c", "h*llo", "hallo", "hbllo", "heeeello", "hello", "hllo", "hxllo"), sorted: true},
	// Expire times, read at once.
	{args: args("EXPIRE", "c", "100"), want: int64(1)},
	{args: args("TTL", "c"), want: int64(100)},
	{args: args("PTTL", "c"), want: int64(100_000), approx: 100},
	{args: args("EXPIRE", "c", "100", "NX"), want: int64(0)},
	{args: args("EXPIRE", "c", "50", "XX"), want: int64(1)},
	{args: args("EXPIRE", "c", "40", "GT"), want: int64(0)},
	{args: args("EXPIRE", "c", "60", "GT"), want: int64(1)},
	{args: args("EXPIRE", "c", "70", "LT"), want: int64(0)},
	{args: args("EXPIRE", "c", "30", "lt"), want: int64(1)},
	{args: args("EXPIRE", "c", "20", "XX", "LT"), want: int64(1)},
	{args: args("TTL", "c"), want: int64(20)},
	{args: args("EXPIRE", "c", "10", "NX", "XX"), wantErr: "ERR NX and XX, GT or LT options at the same time are not compatible"},
	{args: args("EXPIRE", "c", "10", "GT", "LT"), wantErr: "ERR GT and LT options at the same time are not compatible"},
	{args: args("EXPIRE", "c", "10", "FOO"), wantErr: "ERR Unsupported option FOO"},
	{args: args("EXPIRE", "c", "ten"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("EXPIRE", "c", "9223372036854775807"), wantErr: "ERR invalid expire time in 'expire' command"},
	{args: args("PEXPIRE", "c", "9223372036854775807"), wantErr: "ERR invalid expire time in 'pexpire' command"},
	{args: args("EXPIRE", "nokey", "10"), want: int64(0)},
	{args: args("TTL", "nokey"), want: int64(-2)},
	{args: args("PTTL", "nokey"), want: int64(-2)},
	{args: args("PERSIST", "c"), want: int64(1)},
	{args: args("TTL", "c"), want: int64(-1)},
	{args: args("PERSIST", "c"), want: int64(0)},
	{args: args("PERSIST", "nokey"), want: int64(0)},
	{args: args("EXPIRE", "hello", "10", "GT"), want: int64(0)}, // no TTL is infinite for GT
	{args: args("EXPIRE", "hello", "10", "LT"), want: int64(1)}, // and for LT
	{args: args("EXPIREAT", "c", fmt.Sprint(year2100)), want: int64(1)},
	{args: args("EXPIRETIME", "c"), want: int64(year2100)},
	{args: args("PEXPIRETIME", "c"), want: int64(year2100 * 1000)},
	{args: args("PEXPIREAT", "c", fmt.Sprint(year2100*1000+1234)), want: int64(1)},
	{args: args("PEXPIRETIME", "c"), want: int64(year2100*1000 + 1234)},
	{args: args("EXPIRETIME", "nokey"), want: int64(-2)},
	{args: args("EXPIRETIME", "hallo"), want: int64(-1)},
	{args: args("EXPIRE", "c", "-1"), want: int64(1)}, // in the past: deleted
	{args: args("EXISTS", "c"), want: int64(0)},
	{args: args("PEXPIREAT", "hallo", "1"), want: int64(1)},
	{args: args("GET", "hallo")},
	// SET and the TTL.
	{args: args("SET", "t", "v", "EX", "100"), want: "OK"},
	{args: args("SET", "t", "w", "KEEPTTL"), want: "OK"},
	{args: args("TTL", "t"), want: int64(100)},
	{args: args("SET", "t", "x"), want: "OK"},
	{args: args("TTL", "t"), want: int64(-1)},
	{args: args("SET", "t", "v", "PX", "100000"), want: "OK"},
	{args: args("TTL", "t"), want: int64(100)},
	{args: args("SET", "t", "v", "EXAT", fmt.Sprint(year2100)), want: "OK"},
	{args: args("EXPIRETIME", "t"), want: int64(year2100)},
	{args: args("SET", "t", "v", "PXAT", fmt.Sprint(year2100*1000+5)), want: "OK"},
	{args: args("PEXPIRETIME", "t"), want: int64(year2100*1000 + 5)},
	{args: args("SET", "t", "v", "EXAT", "1"), want: "OK"}, // in the past: set and expired at once
	{args: args("GET", "t")},
	{args: args("SET", "t", "v", "EX", "100", "GET")},
	{args: args("INCR", "t"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("SET", "t", "5", "KEEPTTL"), want: "OK"},
	{args: args("INCR", "t"), want: int64(6)},
	{args: args("TTL", "t"), want: int64(100)}, // INCR keeps the TTL
	{args: args("APPEND", "t", "0"), want: int64(2)},
	{args: args("TTL", "t"), want: int64(100)}, // and APPEND
	{args: args("GETSET", "t", "1"), want: "60"},
	{args: args("TTL", "t"), want: int64(-1)}, // GETSET drops it
	// FLUSHDB and FLUSHALL.
	{args: args("FLUSHDB"), want: "OK"},
	{args: args("DBSIZE"), want: int64(0)},
	{args: args("SET", "x", "1"), want: "OK"},
	{args: args("FLUSHALL", "ASYNC"), want: "OK"},
	{args: args("DBSIZE"), want: int64(0)},
	{args: args("FLUSHALL", "FOO"), wantErr: "ERR syntax error"},
}

// serverSteps: the connection and server commands whose replies do not
// depend on the server (versions, ids, times).
var serverSteps = []step{
	{args: args("PING"), want: "PONG"},
	{args: args("PING", "hi"), want: "hi"},
	{args: args("PING", "a", "b"), wantErr: "ERR wrong number of arguments for 'ping' command"},
	{args: args("ECHO", "hi"), want: "hi"},
	{args: args("ECHO"), wantErr: "ERR wrong number of arguments for 'echo' command"},
	{args: args("SELECT", "0"), want: "OK"},
	{args: args("SELECT", "x"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("NOSUCH", "a", "b"), wantErr: "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "},
	{args: args("GET"), wantErr: "ERR wrong number of arguments for 'get' command"},
	{args: args("CONFIG", "GET", "save"), want: list("save", "")},
	{args: args("CONFIG", "GET", "appendonly"), want: list("appendonly", "no")},
	{args: args("CONFIG", "SET", "hz", "20"), want: "OK"},
	{args: args("CONFIG", "GET", "hz"), want: list("hz", "20")},
	{args: args("CONFIG", "SET", "hz", "10"), want: "OK"},
	{args: args("CONFIG", "GET", "nosuch"), want: list()},
	{args: args("CONFIG", "SET", "nosuch", "1"), wantErr: "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"},
	{args: args("CONFIG", "FOO"), wantErr: "ERR unknown subcommand 'FOO'. Try CONFIG HELP."},
	{args: args("CLIENT", "SETNAME", "tester"), want: "OK"},
	{args: args("CLIENT", "GETNAME"), want: "tester"},
	{args: args("CLIENT", "SETNAME", "a b"), wantErr: "ERR Client names cannot contain spaces, newlines or special characters."},
	{args: args("CLIENT", "FOO"), wantErr: "ERR unknown subcommand 'FOO'. Try CLIENT HELP."},
	{args: args("BGSAVE", "FOO"), wantErr: "ERR syntax error"},
	{args: args("SCAN", "x"), wantErr: "ERR invalid cursor"},
	{args: args("SCAN", "0", "COUNT", "0"), wantErr: "ERR syntax error"},
	{args: args("SCAN", "0", "COUNT", "x"), wantErr: "ERR value is not an integer or out of range"},
	{args: args("SCAN", "0", "FOO", "x"), wantErr: "ERR syntax error"},
}

// testLargeValues: APPEND across sizes (in place, moved, large), and
// values of a megabyte.
func testLargeValues(t *testing.T, c *redis.Client) {
	ctx := context.Background()
	var want strings.Builder
	for i := range 300 {
		part := strings.Repeat(string(rune('a'+i%26)), 1+i*7)
		want.WriteString(part)
		if n, err := c.Append(ctx, "grow", part).Result(); err != nil || n != int64(want.Len()) {
			t.Fatalf("APPEND %d: %d, %v; want %d", i, n, err, want.Len())
		}
	}
	if v, err := c.Get(ctx, "grow").Result(); err != nil || v != want.String() {
		t.Fatalf("GET after appends: %d bytes, %v; want %d", len(v), err, want.Len())
	}
	// Large values round-trip.
	big := strings.Repeat("0123456789", 100_000)
	if err := c.MSet(ctx, "big", big, "a", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "big").Result(); err != nil || v != big {
		t.Fatalf("GET of 1 MB: %d bytes, %v", len(v), err)
	}
	if v, err := c.MGet(ctx, "big", "a").Result(); err != nil || v[0] != big || v[1] != "1" {
		t.Fatalf("MGET of 1 MB: %v", err)
	}
}

// redisServer starts a redis-server on a free port for the differential
// tests, or skips (saying so) when none is installed.
func redisServer(t *testing.T) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: the replies are not compared with Redis's (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--logfile", "")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Protocol: 2, DisableIdentity: true, PoolSize: 1})
	t.Cleanup(func() { c.Close() })
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return c
		}
		if i > 200 {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newDefaultClient is a go-redis client with its defaults: RESP3 asked
// with HELLO 3, and CLIENT SETINFO sent.
func newDefaultClient(addr string) *redis.Client { return redis.NewClient(&redis.Options{Addr: addr}) }
