// Command respserver serves examples/snapshotdb's store over RESP2, the
// Redis protocol, on loopback: PING, GET, SET, DEL, EXISTS, INCR, MGET, MSET,
// DBSIZE, FLUSHALL, INFO, SAVE, BGSAVE and LASTSAVE. BGSAVE saves from a
// Fork of the store in the background, as Redis does with fork(2); INFO
// reports it under Redis's names (latest_fork_usec, rdb_bgsave_in_progress,
// rdb_last_bgsave_status, rdb_last_cow_size, current_cow_peak).
//
//	go run ./examples/respserver -addr 127.0.0.1:6380
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6380", "address to listen on (keep it on loopback)")
	dir := flag.String("dir", ".", "directory of the dump file")
	file := flag.String("dbfilename", "dump.kv", "the dump file: loaded at start if present, written by SAVE and BGSAVE")
	arena := flag.Int64("arena", 2<<30, "bytes of memory for the store and its snapshots")
	flag.Parse()

	opts := store.Options{Arena: folio.Config{Size: *arena}}
	path := filepath.Join(*dir, *file)
	st, err := store.LoadFile(path, opts)
	switch {
	case err == nil:
		log.Printf("loaded %d keys from %s", st.Len(), path)
	case os.IsNotExist(err):
		if st, err = store.Open(opts); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatalf("loading %s: %v", path, err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := newServer(st, path)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		srv.close()
	}()
	log.Printf("serving on %s", ln.Addr())
	if err := srv.serve(ln); err != nil {
		log.Fatal(err)
	}
	st.Close()
}
