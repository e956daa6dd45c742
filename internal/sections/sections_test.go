package sections

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSynchronizeWaitsForEarlierSections: Synchronize returns only once
// every section that entered before it has exited, while sections that
// enter after it go on: a stream of them does not keep it waiting.
func TestSynchronizeWaitsForEarlierSections(t *testing.T) {
	var c Counter
	early := c.Enter()
	var done atomic.Bool
	go func() {
		c.Synchronize()
		done.Store(true)
	}()
	// New sections come and go; one stays in for a while, entered after
	// the Synchronize began.
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
				Exit(c.Enter())
			}
		}
	}()
	for c.gen.Load()&1 == 0 { // Synchronize has begun: it flipped the generation
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if done.Load() {
		t.Fatal("Synchronize returned while a section that entered before it was in flight")
	}
	late := c.Enter()
	Exit(early)
	deadline := time.Now().Add(5 * time.Second)
	for !done.Load() {
		if time.Now().After(deadline) {
			t.Fatal("Synchronize kept waiting for sections that entered after it")
		}
		time.Sleep(time.Millisecond)
	}
	Exit(late)
	close(stop)
	wg.Wait()
	c.Drain() // nothing in flight: returns at once
}
