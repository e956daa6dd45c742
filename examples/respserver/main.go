// Command respserver serves examples/snapshotdb's store over RESP2, the
// Redis protocol: Redis's string and keyspace commands with their replies
// and errors, TTLs with lazy and active expiry, SAVE and BGSAVE from a Fork
// of the store (microseconds, where fork(2) takes milliseconds), save
// points, INFO, CONFIG, COMMAND, HELLO, CLIENT and SHUTDOWN. SIGTERM and
// SIGINT shut it down cleanly, with a final save when save points are
// configured, as Redis.
//
//	go run ./examples/respserver -addr 127.0.0.1:6380 -dir /tmp
//
// See README.md for what it leaves out and how it compares with
// redis-server.
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6380", "address to listen on (keep it on loopback: there is no authentication)")
	dir := flag.String("dir", ".", "directory of the dump file")
	file := flag.String("dbfilename", "dump.kv", "the dump file: loaded at start if present, written by SAVE, BGSAVE and save points")
	saveDelta := flag.Bool("save-delta", false, "save deltas after a full image (dbfilename.chain lists them; see README)")
	save := flag.String("save", defaultSave, `save points, "seconds changes ...", as Redis's save parameter; "" for none`)
	arena := flag.Int64("arena", 2<<30, "bytes of memory for the store and its snapshots (reserved, touched on use)")
	capacity := flag.Int("capacity", 0, "keys to size the index for up front (0: grow as keys come)")
	loops := flag.Int("loops", defaultLoops(), "event loops serving the connections (Linux; default GOMAXPROCS/2, at least 1); 0: a goroutine per connection")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (see README: where the time goes)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	host, portStr, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	cfg, err := newConfig(*dir, *file, *save, port, host)
	if err != nil {
		log.Fatalf("-save: %v", err)
	}
	if *saveDelta {
		params["save-delta"].set(cfg, "yes")
	}
	opts := store.Options{Arena: folio.Config{Size: *arena}, Capacity: *capacity}
	path := cfg.dumpPath()
	chainDir, chainName := cfg.chainFiles()
	chain := &store.Chain{Dir: chainDir, Name: chainName}
	st, loaded, err := loadImage(chain, opts)
	if err != nil {
		log.Fatalf("loading %s: %v", path, err)
	}
	if loaded {
		log.Printf("DB loaded from disk: %d keys from %s", st.Len(), path)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := newServer(st, cfg)
	srv.ioLoops = max(*loops, 0)
	srv.setChain(chain)
	if loaded {
		srv.setLoaded(st.Len())
	}
	go func() {
		// As Redis: the first signal saves (if save points are configured)
		// and exits; if that save fails the server goes on, and a second
		// signal exits without saving.
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		s := <-sig
		log.Printf("received %v, scheduling shutdown...", s)
		if err := srv.finalSave(false); err != nil {
			log.Printf("error trying to save the DB, can't exit: %v (signal again to exit without saving)", err)
			s = <-sig
			log.Printf("received %v again: exiting without saving", s)
		}
		srv.shutdown()
	}()
	log.Printf("ready to accept connections on %s", ln.Addr())
	if err := srv.serve(ln); err != nil {
		log.Fatal(err)
	}
	srv.wait()
	if err := st.Close(); err != nil {
		log.Printf("closing the store: %v", err)
	}
	log.Printf("%s is now ready to exit, bye bye...", ownVersion)
}
