package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// Limits of the protocol, Redis's own.
const (
	maxBulkLen   = 512 << 20 // proto-max-bulk-len
	maxMultiBulk = 1<<31 - 1 // arguments in one command (INT_MAX); they are parsed as they arrive
	maxInline    = 64 << 10  // an inline command or a header line (PROTO_INLINE_MAX_SIZE)
	readChunk    = 16 << 10  // the least a read asks for (PROTO_IOBUF_LEN)
)

// protocolError is a malformed request: the reply is an error and the
// connection is closed, as Redis does (the stream cannot be resynchronised).
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "Protocol error: " + e.msg }

// reader parses commands out of one connection's input, without copying
// or allocating: the arguments it returns are slices of its buffer, valid
// until the next call. It keeps the state of a command that has not fully
// arrived (Redis's multibulk state), so a large command is parsed once,
// whatever the reads it arrives in.
type reader struct {
	src  io.Reader
	buf  []byte
	r, w int // unconsumed input: buf[r:w]

	// The command being parsed: its announced arguments (0: none yet),
	// the parse position, and the [start, end) of each argument so far.
	want int
	pos  int
	offs []int

	args   [][]byte
	inline [][]byte
	nread  int64 // bytes read since takeRead, for INFO's total_net_input_bytes
}

func newReader(src io.Reader) *reader {
	return &reader{src: src, buf: make([]byte, readChunk)}
}

// buffered reports whether input is waiting that next has not consumed.
func (rd *reader) buffered() bool { return rd.r < rd.w }

// next returns the next complete command, and false if the buffer holds
// none. A command of no arguments (an empty line, "*0") is an empty slice.
func (rd *reader) next() ([][]byte, bool, error) {
	if rd.want == 0 {
		if rd.r == rd.w {
			return nil, false, nil
		}
		if rd.buf[rd.r] != '*' {
			return rd.nextInline()
		}
		line, end, err := rd.line(rd.r, "too big mbulk count string")
		if line == nil {
			return nil, false, err
		}
		n, ok := store.ParseInt(line[1:])
		if !ok || n > maxMultiBulk {
			return nil, false, &protocolError{"invalid multibulk length"}
		}
		rd.r, rd.pos = end, end
		if n <= 0 {
			return rd.args[:0], true, nil
		}
		rd.want, rd.offs = int(n), rd.offs[:0]
	}
	for len(rd.offs) < 2*rd.want {
		line, end, err := rd.line(rd.pos, "too big bulk count string")
		if line == nil {
			return nil, false, err
		}
		if line[0] != '$' {
			return nil, false, &protocolError{fmt.Sprintf("expected '$', got '%c'", line[0])}
		}
		l, ok := store.ParseInt(line[1:])
		if !ok || l < 0 || l > maxBulkLen {
			return nil, false, &protocolError{"invalid bulk length"}
		}
		if rd.w-end < int(l)+2 {
			return nil, false, nil
		}
		// Redis skips the two bytes after the bulk without looking.
		rd.offs = append(rd.offs, end, end+int(l))
		rd.pos = end + int(l) + 2
	}
	args := rd.args[:0]
	for i := 0; i < len(rd.offs); i += 2 {
		args = append(args, rd.buf[rd.offs[i]:rd.offs[i+1]:rd.offs[i+1]])
	}
	rd.args = args
	rd.r, rd.want = rd.pos, 0
	return args, true, nil
}

// line returns the line starting at from (without its CRLF) and the
// offset after it, or nil if it has not fully arrived; a line longer than
// maxInline is the protocol error tooBig.
func (rd *reader) line(from int, tooBig string) ([]byte, int, error) {
	i := bytes.IndexByte(rd.buf[from:rd.w], '\n')
	if i < 0 {
		if rd.w-from > maxInline {
			return nil, 0, &protocolError{tooBig}
		}
		return nil, 0, nil
	}
	line := rd.buf[from : from+i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		line = rd.buf[from : from+1] // a bare "\n": its first byte is checked by the caller
	}
	return line, from + i + 1, nil
}

// nextInline parses an inline command: words on a line, with Redis's
// quoting (sdssplitargs).
func (rd *reader) nextInline() ([][]byte, bool, error) {
	i := bytes.IndexByte(rd.buf[rd.r:rd.w], '\n')
	if i < 0 {
		if rd.w-rd.r > maxInline {
			return nil, false, &protocolError{"too big inline request"}
		}
		return nil, false, nil
	}
	line := rd.buf[rd.r : rd.r+i]
	rd.r += i + 1
	line = bytes.TrimSuffix(line, []byte{'\r'})
	args, ok := splitArgs(line, rd.inline[:0])
	if !ok {
		return nil, false, &protocolError{"unbalanced quotes in request"}
	}
	rd.inline = args
	return args, true, nil
}

// fill reads more input, making room first: it moves the unconsumed
// input to the front, and doubles the buffer when it is full (so a large
// command grows it by what arrived, never by what a header claims).
func (rd *reader) fill() error {
	if rd.r > 0 && (rd.r == rd.w || rd.w+readChunk > len(rd.buf)) {
		n := copy(rd.buf, rd.buf[rd.r:rd.w])
		shift := rd.r
		rd.r, rd.w, rd.pos = 0, n, rd.pos-shift
		for i := range rd.offs {
			rd.offs[i] -= shift
		}
	}
	if len(rd.buf)-rd.w < readChunk { // full: double, so that what is allocated is at most twice what arrived
		nb := make([]byte, 2*len(rd.buf))
		copy(nb, rd.buf[:rd.w])
		rd.buf = nb
	}
	n, err := rd.src.Read(rd.buf[rd.w:])
	rd.w += n
	rd.nread += int64(n)
	if n > 0 {
		return nil
	}
	return err
}

// takeRead returns the bytes read since its last call, for the
// connection's counter to add (which CONFIG RESETSTAT may have zeroed).
func (rd *reader) takeRead() int64 {
	n := rd.nread
	rd.nread = 0
	return n
}

// shrink gives back a buffer a large command grew, once it is consumed.
func (rd *reader) shrink() {
	if len(rd.buf) > 4*readChunk && rd.r == rd.w {
		rd.buf, rd.r, rd.w, rd.pos = make([]byte, readChunk), 0, 0, 0
	}
}

// splitArgs splits an inline command line as Redis's sdssplitargs does:
// words separated by spaces; "double quotes" with \n, \r, \t, \b, \a, \\,
// \" and \xHH escapes; 'single quotes' with \' only; a closing quote must
// be followed by a space or the end. It reports false for unbalanced
// quotes.
func splitArgs(line []byte, args [][]byte) ([][]byte, bool) {
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			return args, true
		}
		if line[p] != '"' && line[p] != '\'' && bytes.IndexAny(line[p:], "\"'") < 0 {
			// The common case: plain words to the end, no copy.
			start := p
			for p < len(line) && !isSpace(line[p]) {
				p++
			}
			args = append(args, line[start:p])
			continue
		}
		var cur []byte
		inq, insq := false, false
		for done := false; !done; {
			switch {
			case inq:
				switch {
				case p == len(line):
					return nil, false
				case line[p] == '\\' && p+3 < len(line) && line[p+1] == 'x' && isHex(line[p+2]) && isHex(line[p+3]):
					v, _ := strconv.ParseUint(string(line[p+2:p+4]), 16, 8)
					cur = append(cur, byte(v))
					p += 3
				case line[p] == '\\' && p+1 < len(line):
					p++
					c := line[p]
					switch c {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					}
					cur = append(cur, c)
				case line[p] == '"':
					if p+1 < len(line) && !isSpace(line[p+1]) {
						return nil, false
					}
					done = true
				default:
					cur = append(cur, line[p])
				}
			case insq:
				switch {
				case p == len(line):
					return nil, false
				case line[p] == '\\' && p+1 < len(line) && line[p+1] == '\'':
					p++
					cur = append(cur, '\'')
				case line[p] == '\'':
					if p+1 < len(line) && !isSpace(line[p+1]) {
						return nil, false
					}
					done = true
				default:
					cur = append(cur, line[p])
				}
			default:
				switch {
				case p == len(line) || isSpace(line[p]):
					done = true
					p--
				case line[p] == '"':
					inq = true
				case line[p] == '\'':
					insq = true
				default:
					cur = append(cur, line[p])
				}
			}
			p++
		}
		if cur == nil {
			cur = []byte{}
		}
		args = append(args, cur)
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// replies are appended to a client's output buffer, RESP2.
func appendSimple(b []byte, s string) []byte {
	b = append(b, '+')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func appendError(b []byte, s string) []byte {
	b = append(b, '-')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func appendInt(b []byte, n int64) []byte {
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

func appendBulk(b, v []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, '\r', '\n')
	b = append(b, v...)
	return append(b, '\r', '\n')
}

func appendBulkString(b []byte, v string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, '\r', '\n')
	b = append(b, v...)
	return append(b, '\r', '\n')
}

func appendNil(b []byte) []byte { return append(b, "$-1\r\n"...) }

func appendArray(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

func appendNilArray(b []byte) []byte { return append(b, "*-1\r\n"...) }
