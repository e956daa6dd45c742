package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestScanAcrossRehash: SCAN returns every key present from the first
// call to the last at least once, while the shards' tables are resized
// between the calls: grown by keys added, and shrunk (the case a plain
// cursor gets wrong: keys move to buckets it has passed) by keys deleted
// and the cron.
func TestScanAcrossRehash(t *testing.T) {
	for _, grow := range []bool{true, false} {
		name := map[bool]string{true: "grow", false: "shrink"}[grow]
		t.Run(name, func(t *testing.T) {
			// One shard: the cursor is within the table that shrinks.
			ts := startServerShards(t, "", "", 1)
			ctx := context.Background()
			orig, bulk, count := 1000, 30000, int64(20)
			if testing.Short() {
				orig, bulk, count = 300, 6000, 5
			}
			pipe := ts.c.Pipeline()
			for i := range orig {
				pipe.Set(ctx, fmt.Sprintf("orig:%d", i), "v", 0)
			}
			if !grow {
				for i := range bulk {
					pipe.Set(ctx, fmt.Sprintf("bulk:%d", i), "v", 0)
				}
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if err := ts.st.Maintain(time.Minute); err != nil { // finish the growth of the fill
				t.Fatal(err)
			}
			seen := map[string]int{}
			var cursor uint64
			calls, changed, resized := 0, 0, false
			bucketsBefore := ts.st.Stats().IndexSlots
			for {
				keys, next, err := ts.c.Scan(ctx, cursor, "", count).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					seen[k]++
				}
				calls++
				pipe := ts.c.Pipeline()
				for range 100 {
					if grow && changed < bulk { // enough to grow every table, not forever
						pipe.Set(ctx, fmt.Sprintf("new:%d", changed), "v", 0)
					} else if !grow && changed < bulk {
						pipe.Del(ctx, fmt.Sprintf("bulk:%d", changed))
					}
					changed++
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
				if err := ts.st.Maintain(time.Millisecond); err != nil { // what the cron does
					t.Fatal(err)
				}
				if ts.st.Stats().Rehashing > 0 {
					resized = true
				}
				if cursor = next; cursor == 0 {
					break
				}
				if calls > 100000 {
					t.Fatal("SCAN does not end")
				}
			}
			for i := range orig {
				if seen[fmt.Sprintf("orig:%d", i)] == 0 {
					t.Fatalf("orig:%d, present throughout, was not returned (%d calls)", i, calls)
				}
			}
			after := ts.st.Stats().IndexSlots
			if !resized || grow && after <= bucketsBefore || !grow && after >= bucketsBefore {
				t.Fatalf("the tables were not resized during the scan: %d buckets before, %d after", bucketsBefore, after)
			}
			t.Logf("%d calls; %d buckets before, %d after; %d distinct keys returned", calls, bucketsBefore, after, len(seen))
		})
	}
}

// TestScanOptions: MATCH, COUNT and TYPE, over a full iteration.
func TestScanOptions(t *testing.T) {
	ts := startServer(t, "", "")
	ctx := context.Background()
	for i := range 500 {
		ts.c.Set(ctx, fmt.Sprintf("user:%d", i), "v", 0)
		ts.c.Set(ctx, fmt.Sprintf("item:%d", i), "v", 0)
	}
	scanAll := func(match, typ string, count int64) map[string]bool {
		got := map[string]bool{}
		var cursor uint64
		for {
			a := []any{"SCAN", cursor}
			if match != "" {
				a = append(a, "MATCH", match)
			}
			if count > 0 {
				a = append(a, "COUNT", count)
			}
			if typ != "" {
				a = append(a, "TYPE", typ)
			}
			r, err := ts.c.Do(ctx, a...).Slice()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range r[1].([]any) {
				got[k.(string)] = true
			}
			fmt.Sscan(r[0].(string), &cursor)
			if cursor == 0 {
				return got
			}
		}
	}
	for _, tc := range []struct {
		match, typ string
		count      int64
		want       func(k string) bool
		n          int
	}{
		{"", "", 0, func(string) bool { return true }, 1000},
		{"user:*", "", 0, func(k string) bool { return strings.HasPrefix(k, "user:") }, 500},
		{"item:1?", "", 7, func(k string) bool { return strings.HasPrefix(k, "item:1") && len(k) == 7 }, 10},
		{"*", "string", 1000, func(string) bool { return true }, 1000},
		{"*", "hash", 0, func(string) bool { return false }, 0},
	} {
		got := scanAll(tc.match, tc.typ, tc.count)
		if len(got) != tc.n {
			t.Errorf("SCAN MATCH %q TYPE %q COUNT %d: %d keys, want %d", tc.match, tc.typ, tc.count, len(got), tc.n)
		}
		for k := range got {
			if !tc.want(k) {
				t.Errorf("SCAN MATCH %q TYPE %q: %q", tc.match, tc.typ, k)
			}
		}
	}
	// COUNT bounds the work of a call: a call returns about COUNT keys.
	r, err := ts.c.Do(ctx, "SCAN", 0, "COUNT", 5).Slice()
	if err != nil || len(r[1].([]any)) > 40 {
		t.Fatalf("SCAN COUNT 5 returned %d keys, %v", len(r[1].([]any)), err)
	}
}
