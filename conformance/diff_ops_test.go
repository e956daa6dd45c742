package conformance

import (
	"fmt"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/pin"
)

// The operation encoding shared by the differential test and the fuzz
// target: a byte string decoded into operations, one opcode byte and a few
// argument bytes each. Every byte string is a valid program (a string that
// runs out reads zeros), so the fuzzer can mutate freely; arguments are
// decoded into addresses and lengths that hit each other often (a window of
// a few large folios, clustered at its start and around its middle) and now
// and then into invalid ones.

// opKind is an operation of the encoding.
type opKind uint8

const (
	opWrite        opKind = iota // WriteAt in a space
	opRead                       // ReadAt in a space, compared
	opMap                        // Map somewhere
	opMapFixed                   // MapFixed in the window
	opUnmap                      // Unmap
	opProtect                    // Protect
	opRemap                      // Remap
	opAdvise                     // Advise, every advice and a bad one
	opFork                       // Fork (Close when too many spaces live)
	opClose                      // Close
	opNew                        // a new space, its window mapped
	opPin                        // pin.Pin or pin.Get, compared
	opPinWrite                   // a write through a pin.Write pin
	opPinRead                    // the bytes of a pin, compared
	opRelease                    // Release, compared first
	opCheck                      // cow.Check over every live space
	opSplit                      // SplitDeferred: frees the unmapped parts of large folios
	opWriteProtect               // WriteProtect: no contents change, the next writes fault
	opSave                       // snapshot.Save, full or delta, loaded into a replica and compared
	opResetTo                    // Space.ResetTo another space (or itself, or nil)
	opWord                       // an Accessor's 8-byte load, store, add or CAS, compared
	nrOps
)

var opNames = [nrOps]string{"WriteAt", "ReadAt", "Map", "MapFixed", "Unmap", "Protect", "Remap",
	"Advise", "Fork", "Close", "New", "Pin", "PinWrite", "PinRead", "Release", "Check", "Split", "WriteProtect",
	"Save", "ResetTo", "Word"}

func (k opKind) String() string { return opNames[k] }

// opWeights are the shares of the 256 opcode values: accesses most, then
// the calls that change what they see. The operations added last took
// their values from the end of the table, so that the seed corpus's other
// opcodes keep their meaning.
var opWeights = [nrOps]int{
	opWrite: 46, opRead: 38, opMap: 6, opMapFixed: 14, opUnmap: 10, opProtect: 12, opRemap: 10,
	opAdvise: 18, opFork: 10, opClose: 4, opNew: 2, opPin: 22, opPinWrite: 16, opPinRead: 10,
	opRelease: 14, opCheck: 4, opSplit: 4, opWriteProtect: 1, opSave: 2, opResetTo: 1, opWord: 12,
}

// opTable maps an opcode byte to its operation.
var opTable = func() (t [256]opKind) {
	i := 0
	for k, w := range opWeights {
		for range w {
			t[i] = opKind(k)
			i++
		}
	}
	if i != len(t) {
		panic(fmt.Sprintf("op weights sum to %d, not 256", i))
	}
	return t
}()

// decoder reads an operation string.
type decoder struct {
	b []byte
	i int
}

// more reports whether bytes are left.
func (d *decoder) more() bool { return d.i < len(d.b) }

// u8 returns the next byte, zero past the end.
func (d *decoder) u8() byte {
	if d.i >= len(d.b) {
		return 0
	}
	c := d.b[d.i]
	d.i++
	return c
}

// prot decodes a protection; one value in 32 is invalid.
func (d *decoder) prot() cow.Prot {
	c := d.u8()
	switch {
	case c == 0xff:
		return cow.Prot(4)
	case c < 128:
		return cow.ProtRead | cow.ProtWrite
	}
	return [...]cow.Prot{cow.ProtNone, cow.ProtRead, cow.ProtWrite, cow.ProtRead | cow.ProtWrite}[c&3]
}

// advice decodes an advice; one value in 16 is unknown.
func (d *decoder) advice() cow.Advice {
	c := d.u8() & 15
	if c == 15 {
		return cow.Advice(0)
	}
	return [...]cow.Advice{cow.DontNeed, cow.DontFork, cow.DoFork, cow.WipeOnFork, cow.KeepOnFork, cow.Collapse,
		cow.PopulateRead, cow.PopulateWrite}[c%8]
}

// pinFlags decodes the flags of a pin and whether it is a Get.
func (d *decoder) pinFlags() (flags pin.Flags, get bool) {
	c := d.u8()
	if c&1 != 0 {
		flags |= pin.Write
	}
	if c&2 != 0 {
		flags |= pin.Longterm
	}
	if c>>2&7 == 0 {
		flags |= pin.FastOnly
	}
	return flags, c>>5&3 == 0
}

// op is one decoded operation, kept for the trace of a failure.
type op struct {
	kind    opKind
	slot    int // the space's id
	a, b, c uint64
	note    string
}

func (o op) String() string {
	s := fmt.Sprintf("%-8v space %d  %#x %#x %#x", o.kind, o.slot, o.a, o.b, o.c)
	if o.note != "" {
		s += "  " + o.note
	}
	return s
}
