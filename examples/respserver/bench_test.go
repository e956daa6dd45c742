package main

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
)

// BenchmarkCommands runs GET and SET commands through the server's parser
// and dispatch into the store, without the network: redis-benchmark's
// requests (random keys "key:%012d" over a loaded keyspace, 256-byte
// values), pipelined in one buffer. It reports allocations per command:
// the GET/SET path makes none.
func BenchmarkCommands(b *testing.B) {
	const keys, size = 100_000, 256
	st, err := store.Open(store.Options{Arena: folio.Config{Size: 256 << 20}, Capacity: keys})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	value := make([]byte, size)
	for i := range keys {
		st.Put(fmt.Appendf(nil, "key:%012d", i), value)
	}
	cfg, _ := newConfig(b.TempDir(), "dump.kv", "", 0, "")
	srv := newServer(st, cfg)
	defer srv.close()
	for _, name := range []string{"GET", "SET"} {
		b.Run(name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			var req []byte
			const batch = 1000
			for range batch {
				k := fmt.Appendf(nil, "key:%012d", r.IntN(keys))
				if name == "GET" {
					req = fmt.Appendf(req, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(k), k)
				} else {
					req = fmt.Appendf(req, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, size, value)
				}
			}
			c := newClient(0, nil)
			c.sr = st.NewReader()
			defer c.sr.Close()
			c.rd.buf = req
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%batch == 0 {
					c.rd.r, c.rd.w = 0, len(req)
					c.out = c.out[:0]
				}
				args, ok, err := c.rd.next()
				if !ok || err != nil {
					b.Fatal(ok, err)
				}
				srv.exec(c, args)
			}
		})
	}
}
