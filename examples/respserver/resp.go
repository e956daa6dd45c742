package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits of the protocol, Redis's own.
const (
	maxBulkLen   = 512 << 20 // proto-max-bulk-len
	maxMultiBulk = 1 << 20   // arguments in one command
	maxInline    = 64 << 10  // an inline command or a header line
)

// protocolError is a malformed request: the reply is an error and the
// connection is closed, as Redis does (the stream cannot be resynchronised).
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "Protocol error: " + e.msg }

// readCommand reads one command: a RESP array of bulk strings, or an
// inline command (words on a line).
func readCommand(r *bufio.Reader) ([][]byte, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		return bytes.Fields(line), nil
	}
	n, err := strconv.ParseInt(string(line[1:]), 10, 64)
	if err != nil || n > maxMultiBulk {
		return nil, &protocolError{"invalid multibulk length"}
	}
	args := make([][]byte, 0, max(n, 0))
	for range n {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 || line[0] != '$' {
			return nil, &protocolError{fmt.Sprintf("expected '$', got '%s'", line[:min(len(line), 1)])}
		}
		l, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil || l < 0 || l > maxBulkLen {
			return nil, &protocolError{"invalid bulk length"}
		}
		// Grow with what arrives, not with what is claimed.
		var buf bytes.Buffer
		if l <= 64<<10 {
			buf.Grow(int(l) + 2)
		}
		if _, err := io.CopyN(&buf, r, l+2); err != nil {
			return nil, noEOF(err)
		}
		b := buf.Bytes()
		if b[l] != '\r' || b[l+1] != '\n' {
			return nil, &protocolError{"bulk string not terminated by CRLF"}
		}
		args = append(args, b[:l:l])
	}
	return args, nil
}

// readLine reads a line ending in CRLF (or LF), without it.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxInline {
			return nil, &protocolError{"too big inline request"}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 0 {
				return nil, noEOF(err)
			}
			return nil, err
		}
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	return line, nil
}

// noEOF: an end of input inside a command is unexpected.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// replyWriter writes RESP2 replies.
type replyWriter struct{ w *bufio.Writer }

func (rw replyWriter) simple(s string) { rw.w.WriteString("+" + s + "\r\n") }
func (rw replyWriter) err(s string)    { rw.w.WriteString("-" + s + "\r\n") }
func (rw replyWriter) int(n int64) {
	rw.w.WriteByte(':')
	rw.w.Write(strconv.AppendInt(nil, n, 10))
	rw.w.WriteString("\r\n")
}
func (rw replyWriter) bulk(b []byte) {
	if b == nil {
		rw.w.WriteString("$-1\r\n")
		return
	}
	rw.w.WriteByte('$')
	rw.w.Write(strconv.AppendInt(nil, int64(len(b)), 10))
	rw.w.WriteString("\r\n")
	rw.w.Write(b)
	rw.w.WriteString("\r\n")
}
func (rw replyWriter) array(n int) {
	rw.w.WriteByte('*')
	rw.w.Write(strconv.AppendInt(nil, int64(n), 10))
	rw.w.WriteString("\r\n")
}
