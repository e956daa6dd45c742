package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/redis/go-redis/v9"
)

// TestDeltaChainRestart: with save-delta yes, BGSAVEs while clients write
// make a full image and then deltas; every prefix of the chain loads as a
// consistent store (whole values), the whole chain loads as exactly the
// state of the last save, and a restart over the directory serves it. A
// chain with a delta missing, moved or cut is an error that loads nothing.
func TestDeltaChainRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, "")
	ctx := context.Background()
	if err := ts.c.ConfigSet(ctx, "save-delta", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	const keys, hot = 30000, 100
	seedKeys(ctx, t, ts, keys, 100)
	ws := startWriters(t, ts, 3, func(c *redis.Client, w, i int) error {
		// Hot keys: a delta holds the blocks they are on, well under the
		// full image (the chain writes a full image instead once its
		// deltas outgrow one).
		k := fmt.Sprintf("k%d", (i*7+w*13)%hot)
		switch i % 5 {
		case 0:
			return c.Del(ctx, k).Err()
		case 1:
			return c.Append(ctx, k, "+").Err() // a missing key: created as "+", not whole; see check
		default:
			return c.Set(ctx, k, fmt.Sprintf("%s=%d", k, i), 0).Err()
		}
	})
	chain := &store.Chain{Dir: dir, Name: "dump.kv"}
	const rounds = 4
	for round := range rounds {
		ws.reach(ws.n.Load() + 300)
		if v, err := ts.c.BgSave(ctx).Result(); err != nil || v != "Background saving started" {
			t.Fatalf("BGSAVE: %q, %v", v, err)
		}
		waitBgsave(t, ts.c)
		files, err := chain.Files()
		if err != nil || len(files) != round+1 || !strings.HasSuffix(files[0], ".full") ||
			round > 0 && !strings.HasSuffix(files[round], ".delta") {
			t.Fatalf("round %d: the chain is %v (%v)", round, files, err)
		}
	}
	ws.halt()
	want := state(t, ts.c)
	// The last save, after the writes: the chain's state is exactly want.
	if err := ts.c.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitBgsave(t, ts.c)
	files, err := chain.Files()
	if err != nil || len(files) != rounds+1 {
		t.Fatalf("the chain is %v (%v)", files, err)
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(dir, f)
	}
	opts := store.Options{Arena: folio.Config{Size: 256 << 20}}
	// Every prefix loads as a consistent store: whole values, every TTL.
	for n := 1; n <= len(paths); n++ {
		l, err := store.LoadFiles(paths[:n], opts)
		if err != nil {
			t.Fatalf("the first %d images: %v", n, err)
		}
		err = l.Range(func(k, v []byte) bool {
			ks, vs := string(k), strings.TrimRight(string(v), "+")
			if !strings.HasPrefix(ks, "ttl") && vs != "" && !strings.HasPrefix(vs, ks+"=") {
				t.Errorf("the first %d images: %s holds %q", n, k, v)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	ts.stop(t)

	again := startServer(t, dir, "")
	got := state(t, again.c)
	if len(got) != len(want) {
		t.Fatalf("%d keys after the restart, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: %q after the restart, want %q", k, got[k], v)
		}
	}
	again.stop(t)

	// A broken chain loads nothing: a delta missing, two moved, one cut.
	manifest := filepath.Join(dir, "dump.kv.chain")
	good, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	broken := map[string][]string{
		"a delta missing": append([]string{files[0]}, files[2:]...),
		"deltas swapped":  append([]string{files[0], files[2], files[1]}, files[3:]...),
		"no full image":   files[1:],
	}
	for name, list := range broken {
		os.WriteFile(manifest, []byte("anonfolio-chain 1\n"+strings.Join(list, "\n")+"\n"), 0o644)
		st, err := (&store.Chain{Dir: dir, Name: "dump.kv"}).Load(opts)
		if !errors.Is(err, store.ErrBrokenChain) || st != nil {
			t.Errorf("%s: %v; want ErrBrokenChain", name, err)
		}
	}
	os.WriteFile(manifest, good, 0o644)
	last := paths[len(paths)-1]
	b, _ := os.ReadFile(last)
	os.WriteFile(last, b[:len(b)-10], 0o644)
	if st, err := (&store.Chain{Dir: dir, Name: "dump.kv"}).Load(opts); !errors.Is(err, store.ErrCorrupt) || st != nil {
		t.Errorf("a cut delta: %v; want ErrCorrupt", err)
	}
	os.Remove(paths[1])
	if st, err := (&store.Chain{Dir: dir, Name: "dump.kv"}).Load(opts); !errors.Is(err, store.ErrBrokenChain) || st != nil {
		t.Errorf("a delta file gone: %v; want ErrBrokenChain", err)
	}
}
