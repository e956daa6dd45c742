package cow

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestWriteAtSectionEndsOnPage: accessFast ended a lockless section after
// sectionBytes bytes of the access, counted from its start, not at a page
// boundary. When the access does not start on a page boundary, a page
// straddled two sections and a Fork could take its snapshot in between: the
// child got that page half old, half new, which WriteAt's contract ("for
// each page the write lands wholly before or wholly after a concurrent
// Fork's snapshot") forbids. Interleaving: the writer is paused in its first
// section; Fork makes wpSeq odd and waits for it; the writer finishes the
// section and the snapshot is taken before the rest of the page is written.
func TestWriteAtSectionEndsOnPage(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, fill('o', 2<<20))

	paused, resume := pauseFirst(t, testhook.LocklessAfterGrab)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := s.WriteAt(fill('n', 2*sectionBytes), int64(addr)+100); err != nil {
			t.Error(err)
		}
	}()
	<-paused
	var c *Space
	go func() {
		defer wg.Done()
		var err error
		if c, err = s.Fork(); err != nil {
			t.Error(err)
		}
	}()
	for s.wpSeq.Load()&1 == 0 {
		runtime.Gosched()
	}
	close(resume)
	wg.Wait()
	if c == nil {
		t.FailNow()
	}
	e.spaces = append(e.spaces, c)
	for p := Addr(0); p < 2*sectionBytes/4096+1; p++ {
		b := read(t, c, addr+p*4096, 4096)
		if p == 0 || p == 2*sectionBytes/4096 {
			continue // the first and last pages are written only in part
		}
		if n := bytes.Count(b, []byte{'n'}); n != 0 && n != 4096 {
			t.Errorf("the child's page %d is torn: %d bytes new, %d old", p, n, 4096-n)
		}
	}
}

// TestWriteProtectWaitsForLocklessWrites: Protect to read-only and
// WriteProtect promise that the next write to each page faults (soft-dirty
// tracking and incremental snapshots rely on it), so a lockless WriteAt
// that began before them must finish before they return, not land after.
// Interleaving: the writer is paused in its section, holding the first
// page it found writable and is about to copy into; the write-protect runs; it must wait for the writer (it reaches its
// quiescing point), not return while the writer is stopped.
func TestWriteProtectWaitsForLocklessWrites(t *testing.T) {
	for _, how := range []string{"Protect", "WriteProtect"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders())
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			write(t, s, addr, fill('o', 2<<20))

			protected := make(chan error, 1)
			quiescing := make(chan struct{}, 1)
			t.Cleanup(testhook.Set(testhook.Quiescing, func() {
				select {
				case quiescing <- struct{}{}:
				default:
				}
			}))
			var waited bool
			inWrite := testhook.NewOnce(func() {
				go func() {
					if how == "Protect" {
						protected <- s.Protect(addr, 2<<20, ProtRead)
					} else {
						protected <- s.WriteProtect(addr, 2<<20)
					}
				}()
				select {
				case <-quiescing:
					waited = true
				case err := <-protected:
					protected <- err
				}
			})
			restore := testhook.Set(testhook.LocklessAfterRecheck, inWrite.Run)
			n, err := s.WriteAt(fill('n', 8*4096), int64(addr))
			restore()
			if !inWrite.Ran() {
				t.Fatal("the interleaving did not happen: the write never grabbed a page")
			}
			if err := <-protected; err != nil {
				t.Fatal(err)
			}
			if !waited {
				t.Fatalf("%s returned while a lockless write was in flight (it wrote %d bytes, %v, after)", how, n, err)
			}
			if _, err := s.WriteAt([]byte("x"), int64(addr)); !errors.Is(err, ErrProtection) && how == "Protect" {
				t.Fatalf("a write after Protect(read-only): %v, want ErrProtection", err)
			}
		})
	}
}
