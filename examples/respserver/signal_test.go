package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/redis/go-redis/v9"
)

// startChild runs this test binary as the server (TestMain calls main)
// and returns it with a client, once it accepts connections.
func startChild(t *testing.T, dir string, flags ...string) (*exec.Cmd, *redis.Client, *bytes.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], append([]string{"-addr", addr, "-dir", dir, "-arena", fmt.Sprint(256 << 20)}, flags...)...)
	cmd.Env = append(os.Environ(), "RESPSERVER_MAIN=1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) { // an emulator without binfmt_misc (arm64 under qemu-user)
			t.Skipf("cannot run this test binary as a child process here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	for i := 0; c.Ping(context.Background()).Err() != nil; i++ {
		if i > 500 {
			t.Fatalf("the server did not start:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd, c, &log
}

// waitExit waits for the child to exit and returns its error.
func waitExit(t *testing.T, cmd *exec.Cmd, log *bytes.Buffer) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not exit:\n%s", log.String())
		return nil
	}
}

// TestSignals: SIGTERM and SIGINT shut the server down cleanly, exit 0,
// with a final save when save points are configured and none otherwise;
// a restart loads what was saved.
func TestSignals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		save  string
		saved bool
	}{
		{"SIGTERM with save points", syscall.SIGTERM, "3600 1", true},
		{"SIGINT with save points", syscall.SIGINT, "900 1 300 10", true},
		{"SIGTERM without save points", syscall.SIGTERM, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd, c, log := startChild(t, dir, "-save", tc.save)
			for i := range 1000 {
				if err := c.Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprint(i), 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			c.Set(ctx, "ttl", "v", time.Hour)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if err := waitExit(t, cmd, log); err != nil {
				t.Fatalf("exit: %v\n%s", err, log.String())
			}
			dump := filepath.Join(dir, "dump.kv")
			_, err := os.Stat(dump)
			if !tc.saved {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a dump without save points: %v", err)
				}
				return
			}
			l, err := store.LoadFile(dump, store.Options{Arena: folio.Config{Size: 256 << 20}})
			if err != nil {
				t.Fatalf("%v\n%s", err, log.String())
			}
			defer l.Close()
			if n := l.Len(); n != 1001 {
				t.Fatalf("the final save holds %d keys, want 1001", n)
			}
			if at, ok, err := l.TTL([]byte("ttl")); err != nil || !ok || at == 0 {
				t.Fatalf("the TTL did not survive: %d, %v, %v", at, ok, err)
			}
			// And a new server loads it.
			_, c2, _ := startChild(t, dir, "-save", tc.save)
			if v, err := c2.Get(ctx, "k999").Result(); err != nil || v != "999" {
				t.Fatalf("after the restart: %q, %v", v, err)
			}
		})
	}
}
