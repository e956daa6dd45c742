package main

import (
	"bufio"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// server serves RESP2 over a store. Commands run concurrently; the ones
// that read and then write (INCR, MSET, FLUSHALL, SET, DEL) hold writeMu
// so that each is atomic, as Redis's single thread makes them.
type server struct {
	st    *store.Store
	dump  string // where SAVE and BGSAVE write
	start time.Time

	writeMu sync.Mutex

	saveMu sync.Mutex
	// +checklocks:saveMu
	bgsaving bool
	// +checklocks:saveMu
	lastSaveAt int64 // unix seconds of the last successful save, or the start

	commands atomic.Int64 // commands run
	conns    atomic.Int64 // connections accepted

	connMu sync.Mutex
	// +checklocks:connMu
	ln net.Listener
	// +checklocks:connMu
	open map[net.Conn]struct{}
	// +checklocks:connMu
	closed bool

	wg       sync.WaitGroup // connection handlers
	bgsaveWG sync.WaitGroup // the background save
	logf     func(format string, args ...any)
}

func newServer(st *store.Store, dump string) *server {
	now := time.Now()
	return &server{st: st, dump: dump, start: now, lastSaveAt: now.Unix(),
		open: map[net.Conn]struct{}{}, logf: log.Printf}
}

// serve accepts connections on ln until close.
func (s *server) serve(ln net.Listener) error {
	s.connMu.Lock()
	s.ln = ln
	s.connMu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.connMu.Lock()
			closed := s.closed
			s.connMu.Unlock()
			if closed {
				return nil
			}
			return err
		}
		s.connMu.Lock()
		if s.closed {
			s.connMu.Unlock()
			c.Close()
			return nil
		}
		s.open[c] = struct{}{}
		s.wg.Add(1)
		s.connMu.Unlock()
		s.conns.Add(1)
		go s.handle(c)
	}
}

// close stops accepting, closes every connection and waits for them and
// for a background save.
func (s *server) close() {
	s.connMu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.open {
		c.Close()
	}
	s.connMu.Unlock()
	s.wg.Wait()
	s.bgsaveWG.Wait()
}

// forget closes c and drops it from the open connections.
func (s *server) forget(c net.Conn) {
	c.Close()
	s.connMu.Lock()
	delete(s.open, c)
	s.connMu.Unlock()
	s.wg.Done()
}

func (s *server) handle(c net.Conn) {
	defer s.forget(c)
	r := bufio.NewReaderSize(c, 64<<10)
	w := replyWriter{bufio.NewWriterSize(c, 64<<10)}
	for {
		args, err := readCommand(r)
		if err != nil {
			var pe *protocolError
			if errors.As(err, &pe) {
				w.err("ERR " + pe.Error())
				w.w.Flush()
			}
			return
		}
		if len(args) == 0 {
			continue
		}
		s.commands.Add(1)
		if quit := s.exec(w, args); quit {
			w.w.Flush()
			return
		}
		// Pipelining: flush when no further command is buffered.
		if r.Buffered() == 0 {
			if err := w.w.Flush(); err != nil {
				return
			}
		}
	}
}

// arity: the number of arguments a command takes, the name included;
// negative means at least that many.
var arity = map[string]int{
	"PING": -1, "GET": 2, "SET": 3, "DEL": -2, "EXISTS": -2, "INCR": 2, "MGET": -2, "MSET": -3,
	"DBSIZE": 1, "FLUSHALL": -1, "INFO": -1, "SAVE": 1, "BGSAVE": -1, "LASTSAVE": 1,
	"QUIT": 1, "ECHO": 2, "COMMAND": -1, "CONFIG": -2, "SELECT": 2,
}

// exec runs one command and writes its reply; it reports whether the
// connection should close.
func (s *server) exec(w replyWriter, args [][]byte) bool {
	name := strings.ToUpper(string(args[0]))
	a, known := arity[name]
	switch {
	case !known:
		w.err(fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", clip(args[0]), argsPreview(args[1:])))
		return false
	case a >= 0 && len(args) != a, a < 0 && len(args) < -a:
		w.err(fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(name)))
		return false
	}
	switch name {
	case "PING":
		if len(args) > 2 {
			w.err("ERR wrong number of arguments for 'ping' command")
		} else if len(args) == 2 {
			w.bulk(args[1])
		} else {
			w.simple("PONG")
		}
	case "ECHO":
		w.bulk(args[1])
	case "QUIT":
		w.simple("OK")
		return true
	case "GET":
		v, err := s.st.Get(args[1])
		s.value(w, v, err)
	case "SET":
		s.writeMu.Lock()
		err := s.st.Put(args[1], args[2])
		s.writeMu.Unlock()
		s.ok(w, err)
	case "DEL":
		n, err := s.del(args[1:])
		s.reply(w, n, err)
	case "EXISTS":
		n, err := s.exists(args[1:])
		s.reply(w, n, err)
	case "INCR":
		s.writeMu.Lock()
		n, err := s.incr(args[1])
		s.writeMu.Unlock()
		if err != nil {
			w.err(err.Error())
		} else {
			w.int(n)
		}
	case "MGET":
		w.array(len(args) - 1)
		for _, k := range args[1:] {
			v, err := s.st.Get(k)
			if err != nil {
				v = nil
			}
			w.bulk(v)
		}
	case "MSET":
		if len(args)%2 != 1 {
			w.err("ERR wrong number of arguments for 'mset' command")
			break
		}
		s.writeMu.Lock()
		var err error
		for i := 1; i < len(args) && err == nil; i += 2 {
			err = s.st.Put(args[i], args[i+1])
		}
		s.writeMu.Unlock()
		s.ok(w, err)
	case "DBSIZE":
		w.int(int64(s.st.Len()))
	case "FLUSHALL":
		s.writeMu.Lock()
		err := s.st.Flush()
		s.writeMu.Unlock()
		s.ok(w, err)
	case "INFO":
		w.bulk([]byte(s.info(args[1:])))
	case "SAVE":
		s.saveMu.Lock()
		busy := s.bgsaving
		s.saveMu.Unlock()
		if busy {
			w.err("ERR Background save already in progress")
			break
		}
		err := s.st.SaveFile(s.dump)
		if err == nil {
			s.saved()
		}
		s.ok(w, err)
	case "BGSAVE":
		if err := s.bgsave(); err != nil {
			w.err(err.Error())
		} else {
			w.simple("Background saving started")
		}
	case "LASTSAVE":
		s.saveMu.Lock()
		w.int(s.lastSaveAt)
		s.saveMu.Unlock()
	case "SELECT":
		if string(args[1]) != "0" {
			w.err("ERR DB index is out of range")
		} else {
			w.simple("OK")
		}
	case "COMMAND", "CONFIG":
		// Clients and redis-benchmark ask; there is nothing to configure.
		w.array(0)
	}
	return false
}

// del deletes keys, returning how many there were.
func (s *server) del(keys [][]byte) (int64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var n int64
	for _, k := range keys {
		ok, err := s.st.Delete(k)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// exists counts the keys that are there.
func (s *server) exists(keys [][]byte) (int64, error) {
	var n int64
	for _, k := range keys {
		_, err := s.st.Get(k)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound):
			return n, err
		}
	}
	return n, nil
}

// reply writes an integer reply, or the error.
func (s *server) reply(w replyWriter, n int64, err error) {
	if err != nil {
		w.err("ERR " + err.Error())
		return
	}
	w.int(n)
}

// value replies with a Get's result.
func (s *server) value(w replyWriter, v []byte, err error) {
	switch {
	case err == nil:
		if v == nil {
			v = []byte{}
		}
		w.bulk(v)
	case errors.Is(err, store.ErrNotFound):
		w.bulk(nil)
	default:
		w.err("ERR " + err.Error())
	}
}

func (s *server) ok(w replyWriter, err error) {
	if err != nil {
		w.err("ERR " + err.Error())
		return
	}
	w.simple("OK")
}

// incr adds one to the integer at key. The caller holds writeMu.
func (s *server) incr(key []byte) (int64, error) {
	v, err := s.st.Get(key)
	var n int64
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("ERR %v", err)
	default:
		if n, err = strconv.ParseInt(string(v), 10, 64); err != nil || len(v) > 20 {
			return 0, errors.New("ERR value is not an integer or out of range")
		}
	}
	if n == 1<<63-1 {
		return 0, errors.New("ERR increment or decrement would overflow")
	}
	n++
	if err := s.st.Put(key, strconv.AppendInt(nil, n, 10)); err != nil {
		return 0, fmt.Errorf("ERR %v", err)
	}
	return n, nil
}

// bgsave starts a background save to the dump file.
func (s *server) bgsave() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if s.bgsaving {
		return errors.New("ERR Background save already in progress")
	}
	s.bgsaving = true
	s.bgsaveWG.Add(1)
	go func() {
		defer s.bgsaveWG.Done()
		err := s.st.SaveFile(s.dump)
		if err != nil {
			s.logf("background save: %v", err)
		}
		s.saveMu.Lock()
		s.bgsaving = false
		s.saveMu.Unlock()
		if err == nil {
			s.saved()
		}
	}()
	return nil
}

func (s *server) saved() {
	s.saveMu.Lock()
	s.lastSaveAt = time.Now().Unix()
	s.saveMu.Unlock()
}

// info renders INFO with Redis's field names.
func (s *server) info(sections [][]byte) string {
	want := func(name string) bool {
		if len(sections) == 0 {
			return true
		}
		for _, sec := range sections {
			if l := strings.ToLower(string(sec)); l == name || l == "all" || l == "everything" || l == "default" {
				return true
			}
		}
		return false
	}
	st := s.st.Stats()
	s.saveMu.Lock()
	bgsaving, lastSave := s.bgsaving, s.lastSaveAt
	s.saveMu.Unlock()
	var b strings.Builder
	field := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }
	b01 := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	if want("server") {
		b.WriteString("# Server\r\n")
		field("redis_version", "7.0.0-anonfolio")
		field("process_id", os.Getpid())
		field("uptime_in_seconds", int64(time.Since(s.start).Seconds()))
		b.WriteString("\r\n")
	}
	if want("memory") {
		b.WriteString("# Memory\r\n")
		field("used_memory", st.ArenaBytes)
		field("used_memory_dataset", st.ResidentBytes)
		b.WriteString("\r\n")
	}
	if want("persistence") {
		status := "ok"
		if st.LastSaveErr != nil {
			status = "err"
		}
		cur := int64(-1)
		if st.SaveInProgress {
			cur = int64(time.Since(st.CurrentSaveStart).Seconds())
		}
		b.WriteString("# Persistence\r\n")
		field("loading", 0)
		field("rdb_bgsave_in_progress", b01(bgsaving || st.SaveInProgress))
		field("rdb_last_save_time", lastSave)
		field("rdb_last_bgsave_status", status)
		field("rdb_last_bgsave_time_sec", int64(st.LastSaveDuration.Round(time.Second).Seconds()))
		field("rdb_last_bgsave_time_usec", st.LastSaveDuration.Microseconds())
		field("rdb_current_bgsave_time_sec", cur)
		field("rdb_saves", st.Saves)
		field("rdb_last_cow_size", st.LastCowBytes)
		field("rdb_last_cow_peak", st.LastCowPeak)
		field("current_cow_size", st.CurrentCowBytes)
		field("current_cow_peak", st.CurrentCowPeak)
		field("current_save_keys_total", st.CurrentSaveKeys)
		field("rdb_last_save_keys", st.LastSaveKeys)
		b.WriteString("\r\n")
	}
	if want("stats") {
		b.WriteString("# Stats\r\n")
		field("total_connections_received", s.conns.Load())
		field("total_commands_processed", s.commands.Load())
		field("latest_fork_usec", st.LastFork.Microseconds())
		field("total_forks", st.Forks)
		b.WriteString("\r\n")
	}
	if want("keyspace") {
		b.WriteString("# Keyspace\r\n")
		if st.Keys > 0 {
			fmt.Fprintf(&b, "db0:keys=%d,expires=0,avg_ttl=0\r\n", st.Keys)
		}
	}
	return b.String()
}

func clip(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
}

func argsPreview(args [][]byte) string {
	var parts []string
	for _, a := range args[:min(len(args), 4)] {
		parts = append(parts, "'"+clip(a)+"'")
	}
	return strings.Join(parts, " ")
}
