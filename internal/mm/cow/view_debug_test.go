//go:build anonfolio_debug

package cow

import (
	"runtime/debug"
	"testing"
)

// TestDebugViewPieceUsedAfter: in the anonfolio_debug build a piece kept
// past the View's callback is inaccessible (a write faults at the culprit)
// or, where the build cannot protect it (race builds), poisoned; and the
// space never sees a write through it.
func TestDebugViewPieceUsedAfter(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	acc := s.NewAccessor()
	defer acc.Close()
	var kept []byte
	if err := acc.View(addr, 64, true, func(p []byte) error { copy(p, "in"); kept = p; return nil }); err != nil {
		t.Fatal(err)
	}
	expect(t, s, addr, []byte("in"))
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faulted := func() (f bool) {
		defer func() { f = recover() != nil }()
		kept[0] = 'X'
		return false
	}()
	if !faulted && kept[1] != 0x6b {
		t.Fatalf("a piece used after its View neither faulted nor reads poison (%q)", kept[:2])
	}
	expect(t, s, addr, []byte("in"))
}
