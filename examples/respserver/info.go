package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The version this server reports: the Redis version whose commands and
// replies it follows (clients check it), and its own.
const (
	redisVersion = "7.0.0"
	ownVersion   = "anonfolio-respserver 0.2"
)

// totalCounters is the sum of every connection's counters.
type totalCounters struct{ commands, hits, misses, errors, netIn, netOut int64 }

func (s *server) totals() totalCounters {
	var t totalCounters
	s.connMu.Lock() // a closing connection moves its counters to retired under it
	t.add(&s.retired)
	for c := range s.clients {
		t.add(&c.counters)
	}
	s.connMu.Unlock()
	return t
}

func (t *totalCounters) add(c *counters) {
	t.commands += c.commands.Load()
	t.hits += c.hits.Load()
	t.misses += c.misses.Load()
	t.errors += c.errors.Load()
	t.netIn += c.netIn.Load()
	t.netOut += c.netOut.Load()
}

// resetStats is CONFIG RESETSTAT.
func (s *server) resetStats() {
	s.connMu.Lock()
	s.retired.reset()
	for c := range s.clients {
		c.counters.reset()
	}
	s.connMu.Unlock()
	s.conns.Store(0)
	s.rejected.Store(0)
}

func (s *server) connected() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.clients)
}

// usedMemory is the memory the server uses for data: the store's arena
// pages in use (its snapshots' included) and the Go heap.
func usedMemory(s *server) int64 {
	st := s.st.Stats()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return st.ArenaBytes + int64(sample[0].Value.Uint64())
}

// rss is the process's resident memory, from /proc/self/statm.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// infoSections are INFO's sections, in Redis's order, with their titles;
// "default" and "all" are all of them.
var (
	infoSections = []string{"server", "clients", "memory", "persistence", "stats", "replication", "cpu", "keyspace"}
	infoTitles   = map[string]string{"server": "Server", "clients": "Clients", "memory": "Memory", "persistence": "Persistence",
		"stats": "Stats", "replication": "Replication", "cpu": "CPU", "keyspace": "Keyspace"}
)

// info renders INFO with Redis's field names.
func (s *server) info(args [][]byte) string {
	want := map[string]bool{}
	for _, a := range args {
		sec := strings.ToLower(string(a))
		if sec == "default" || sec == "all" || sec == "everything" {
			want = nil
			break
		}
		want[sec] = true
	}
	if len(args) == 0 {
		want = nil
	}
	var b strings.Builder
	first := true
	for _, sec := range infoSections {
		if want != nil && !want[sec] {
			continue
		}
		if !first {
			b.WriteString("\r\n")
		}
		first = false
		b.WriteString("# " + infoTitles[sec] + "\r\n")
		s.infoSection(&b, sec)
	}
	return b.String()
}

func (s *server) infoSection(b *strings.Builder, sec string) {
	field := func(k string, v any) { fmt.Fprintf(b, "%s:%v\r\n", k, v) }
	st := s.st.Stats()
	switch sec {
	case "server":
		up := time.Since(s.start)
		exe, _ := os.Executable()
		field("redis_version", redisVersion)
		field("server_name", ownVersion)
		field("redis_mode", "standalone")
		field("os", runtime.GOOS+" "+runtime.GOARCH)
		field("arch_bits", strconv.IntSize)
		field("multiplexing_api", "goroutines")
		field("go_version", runtime.Version())
		field("process_id", os.Getpid())
		field("tcp_port", s.cfg.port)
		field("uptime_in_seconds", int64(up.Seconds()))
		field("uptime_in_days", int64(up.Hours()/24))
		field("hz", s.cfg.hzValue())
		field("configured_hz", s.cfg.hzValue())
		field("executable", exe)
		field("config_file", "")
	case "clients":
		field("connected_clients", s.connected())
		field("maxclients", s.cfg.maxClients())
		field("blocked_clients", 0)
	case "memory":
		used, r := usedMemory(s), rss()
		field("used_memory", used)
		field("used_memory_human", human(used))
		field("used_memory_rss", r)
		field("used_memory_rss_human", human(r))
		field("used_memory_peak", max(s.memPeak.Load(), used))
		field("used_memory_peak_human", human(max(s.memPeak.Load(), used)))
		field("used_memory_dataset", st.ResidentBytes)
		field("store_arena_bytes", st.ArenaBytes)
		field("store_slab_bytes", st.SlabBytes)
		field("store_buckets", st.IndexSlots)
		field("store_rehashing_shards", st.Rehashing)
		field("maxmemory", 0)
		field("maxmemory_policy", "noeviction")
		field("mem_allocator", "anonfolio")
	case "persistence":
		s.persist.mu.Lock()
		bgsaving, lastSave, lastOK, loaded := s.persist.bgsaving, s.persist.lastSave, s.persist.lastOK, s.persist.loadedKeys
		s.persist.mu.Unlock()
		status := "ok"
		if !lastOK || st.LastSaveErr != nil {
			status = "err"
		}
		cur := int64(-1)
		if st.SaveInProgress {
			cur = int64(time.Since(st.CurrentSaveStart).Seconds())
		}
		field("loading", 0)
		field("async_loading", 0)
		field("rdb_changes_since_last_save", st.Dirty-st.DirtyAtLastSave)
		field("rdb_bgsave_in_progress", b2i(bgsaving || st.SaveInProgress))
		field("rdb_last_save_time", lastSave.Unix())
		field("rdb_last_bgsave_status", status)
		field("rdb_last_bgsave_time_sec", int64(st.LastSaveDuration.Round(time.Second).Seconds()))
		field("rdb_last_bgsave_time_usec", st.LastSaveDuration.Microseconds())
		field("rdb_current_bgsave_time_sec", cur)
		field("rdb_saves", st.Saves)
		field("rdb_last_cow_size", st.LastCowBytes)
		field("rdb_last_cow_peak", st.LastCowPeak)
		field("rdb_last_load_keys_loaded", loaded)
		field("rdb_last_load_keys_expired", 0)
		field("rdb_last_save_keys", st.LastSaveKeys)
		field("rdb_last_save_bytes", st.LastSaveBytes)
		field("current_cow_size", st.CurrentCowBytes)
		field("current_cow_peak", st.CurrentCowPeak)
		field("current_save_keys_processed", 0)
		field("current_save_keys_total", st.CurrentSaveKeys)
		field("current_save_bytes", st.CurrentSaveBytes)
		field("aof_enabled", 0)
		field("aof_rewrite_in_progress", 0)
		field("aof_rewrite_scheduled", 0)
		field("aof_last_rewrite_time_sec", -1)
		field("aof_current_rewrite_time_sec", -1)
		field("aof_last_bgrewrite_status", "ok")
		field("aof_last_write_status", "ok")
		field("module_fork_in_progress", 0)
	case "stats":
		t := s.totals()
		field("total_connections_received", s.conns.Load())
		field("total_commands_processed", t.commands)
		field("instantaneous_ops_per_sec", s.ops.rate())
		field("total_net_input_bytes", t.netIn)
		field("total_net_output_bytes", t.netOut)
		field("rejected_connections", s.rejected.Load())
		field("expired_keys", st.Expired)
		field("evicted_keys", 0)
		field("keyspace_hits", t.hits)
		field("keyspace_misses", t.misses)
		field("latest_fork_usec", st.LastFork.Microseconds())
		field("total_forks", st.Forks)
		field("total_error_replies", t.errors)
	case "replication":
		field("role", "master")
		field("connected_slaves", 0)
		field("master_failover_state", "no-failover")
		field("master_repl_offset", 0)
	case "cpu":
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		tv := func(t syscall.Timeval) string {
			return fmt.Sprintf("%d.%06d", t.Sec, t.Usec)
		}
		field("used_cpu_sys", tv(ru.Stime))
		field("used_cpu_user", tv(ru.Utime))
	case "keyspace":
		if st.Keys > 0 {
			fmt.Fprintf(b, "db0:keys=%d,expires=%d,avg_ttl=%d\r\n", st.Keys, st.Expires, st.AvgTTL.Milliseconds())
		}
	}
}
