package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// infoInt is an integer field of an INFO reply.
func infoInt(t *testing.T, info, field string) int64 {
	t.Helper()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s: %q", field, v)
			}
			return n
		}
	}
	t.Fatalf("INFO lacks %s:\n%s", field, info)
	return 0
}

// TestResetStatNetInput: CONFIG RESETSTAT zeroes total_net_input_bytes
// for good; the bytes a connection read before it do not come back with
// its next read (as an event loop or a connection's goroutine, both).
func TestResetStatNetInput(t *testing.T) {
	for _, loops := range []int{1, 0} {
		ts := startServerWith(t, "", "", 8, loops, nil)
		ctx := context.Background()
		if err := ts.c.Set(ctx, "k", strings.Repeat("v", 100<<10), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := ts.c.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		info, err := ts.c.Info(ctx, "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		// After the reset: the INFO command itself, some 30 bytes.
		if in := infoInt(t, info, "total_net_input_bytes"); in > 1000 {
			t.Errorf("loops %d: total_net_input_bytes %d after CONFIG RESETSTAT: the 100 KiB SET read before it counts again", loops, in)
		}
		ts.stop(t)
	}
}
