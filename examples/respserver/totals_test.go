package main

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestTotalsWhileClosing: INFO's totals sum the closed connections' counters
// and the open ones'; a connection closing meanwhile is counted once, so
// total_commands_processed never goes back (no CONFIG RESETSTAT here).
func TestTotalsWhileClosing(t *testing.T) {
	for _, loops := range []int{1, 0} {
		ts := startServerWith(t, "", "", 8, loops, nil)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Error(err)
					return
				}
				conn.Write([]byte("PING\r\nPING\r\nQUIT\r\n"))
				var buf [64]byte
				for n := 0; n < len("+PONG\r\n+PONG\r\n+OK\r\n"); {
					m, err := conn.Read(buf[:])
					if err != nil {
						break
					}
					n += m
				}
				conn.Close()
			}
		}()
		var last int64
		for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
			now := ts.srv.totals().commands
			if now < last {
				t.Errorf("loops %d: total_commands_processed went from %d back to %d", loops, last, now)
				break
			}
			last = now
		}
		close(stop)
		wg.Wait()
		ts.stop(t)
	}
}
