package cow

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Errors. Each is a sentinel for errors.Is; returned errors wrap them with
// the address or argument at fault. Running out of memory is
// folio.ErrNoMemory, wrapped by noMemory.
var (
	// ErrFault: no region at that address (SIGSEGV for a missing mapping).
	ErrFault = errors.New("cow: no mapping at address")
	// ErrProtection: the access is not allowed by the region's protection.
	ErrProtection = errors.New("cow: access not allowed by protection")
	// ErrInvalid: a misaligned address, a bad length, an overlap or an
	// unknown argument.
	ErrInvalid = errors.New("cow: invalid argument")
	// ErrClosed: the space was closed.
	ErrClosed = errors.New("cow: space closed")
	// ErrBusy: Advise(Collapse) found pages it may not move: pinned, or
	// referenced by someone other than their mappings (a Get, a copy or a
	// read in flight). Like MADV_COLLAPSE's EAGAIN: a later try may work.
	ErrBusy = errors.New("cow: pages pinned or referenced")
)

// unmappedErr is ErrFault for a call op whose range is not wholly mapped.
func unmappedErr(op string, addr Addr, length int) error {
	return fmt.Errorf("%w: %s of %#x+%#x covers unmapped addresses", ErrFault, op, uint64(addr), length)
}

func faultErr(addr Addr) error { return fmt.Errorf("%w %#x", ErrFault, uint64(addr)) }

func protErr(addr Addr, write bool) error {
	what := "read"
	if write {
		what = "write"
	}
	return fmt.Errorf("%w: %s at %#x", ErrProtection, what, uint64(addr))
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// closedErr returns ErrClosed. Returning it through this function keeps
// checklocks from inferring that the variable is guarded by the map lock
// (it is only read under it).
func closedErr() error { return ErrClosed }

// busyErr returns ErrBusy, for the same reason.
func busyErr() error { return ErrBusy }

// noMemory wraps the arena's ErrNoMemory for what op needed with what
// holds the arena's memory, so that the error says where the memory went:
// the free pages, the pins, the copies that copy-on-write made since the
// spaces forked, and each live space's resident size.
func (s *Space) noMemory(err error, op string) error {
	st := s.a.Stats()
	ps := int64(s.ps)
	pins, gets, _ := s.a.Outstanding()
	var copied uint64
	var spaces []string
	for _, sp := range s.as.liveSpaces() {
		c := sp.Stats()
		copied += c.CopyBytes
		this := ""
		if sp == s {
			this = ", this one"
		}
		spaces = append(spaces, fmt.Sprintf("space %d maps %s%s", sp.mm, folio.HumanSize(c.Resident*ps), this))
	}
	slices.Sort(spaces)
	return fmt.Errorf("%w (%s): arena of %s: %s free, %s pinned, %s held by Gets, %s copied by copy-on-write since the spaces forked; %s",
		err, op, folio.HumanSize(st.TotalPages*ps), folio.HumanSize(st.FreePages*ps), folio.HumanSize(pins*ps),
		folio.HumanSize(gets*ps), folio.HumanSize(int64(copied)), strings.Join(spaces, ", "))
}
