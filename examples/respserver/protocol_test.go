package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawExchange sends req on a new connection and reads lines replies (or
// until the server closes it).
func rawExchange(t *testing.T, addr, req string, lines int) []string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var out []string
	for range lines {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		out = append(out, strings.TrimRight(l, "\r\n"))
	}
	return out
}

// TestBadInput sends malformed requests on raw connections: a protocol
// error gets Redis's error and the connection is closed (the stream cannot
// be resynchronised); a bad command is an error reply and the connection
// goes on. The server goes on serving throughout.
func TestBadInput(t *testing.T) {
	ts := startServer(t, "", "")
	checkBadInput(t, ts.addr)
	// A large command in many small writes, and a pipeline of them.
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	value := strings.Repeat("x", 300_000)
	req := "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$300000\r\n" + value + "\r\n*2\r\n$6\r\nSTRLEN\r\n$3\r\nbig\r\n"
	go func() {
		for i := 0; i < len(req); i += 1000 {
			conn.Write([]byte(req[i:min(i+1000, len(req))]))
		}
	}()
	r := bufio.NewReader(conn)
	for _, want := range []string{"+OK", ":300000"} {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if l, err := r.ReadString('\n'); err != nil || strings.TrimRight(l, "\r\n") != want {
			t.Fatalf("a large command in pieces: %q, %v; want %q", l, err, want)
		}
	}
	// The server goes on serving.
	if v, err := ts.c.Ping(context.Background()).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING after bad input: %q %v", v, err)
	}
	if v, err := ts.c.Get(context.Background(), "a b").Result(); err != nil || v != "c'd" {
		t.Fatalf("GET after bad input: %q %v", v, err)
	}
}

// checkBadInput sends each malformed request to the server at addr (this
// one, or redis-server in TestAgainstRedis).
func checkBadInput(t *testing.T, addr string) {
	for _, tc := range []struct {
		name, req string
		want      []string
	}{ // a protocol error is checked to close the connection: one line more is read, the end
		{"unknown command, then PING on the same connection", "*1\r\n$5\r\nBOGUS\r\nPING\r\n",
			[]string{"-ERR unknown command 'BOGUS', with args beginning with: ", "+PONG"}},
		{"wrong arity, then PING", "*1\r\n$3\r\nSET\r\n*1\r\n$4\r\nPING\r\n",
			[]string{"-ERR wrong number of arguments for 'set' command", "+PONG"}},
		{"inline commands", "SET a b\r\nGET a\r\n", []string{"+OK", "$1", "b"}},
		{"inline with quotes", "SET \"a b\" 'c\\'d'\r\nGET \"a b\"\r\nGET \"\\x61\\x20b\"\r\n", []string{"+OK", "$3", "c'd", "$3", "c'd"}},
		{"unbalanced quotes", "SET \"a b\r\n", []string{"-ERR Protocol error: unbalanced quotes in request"}},
		{"a closing quote glued to a word", "SET \"a\"b c\r\n", []string{"-ERR Protocol error: unbalanced quotes in request"}},
		{"empty lines are skipped", "\r\n\r\nPING\r\n", []string{"+PONG"}},
		{"an empty array is skipped", "*0\r\n*-1\r\nPING\r\n", []string{"+PONG"}},
		{"a bad multibulk length", "*abc\r\n", []string{"-ERR Protocol error: invalid multibulk length"}},
		{"too many arguments", "*2147483648\r\n", []string{"-ERR Protocol error: invalid multibulk length"}},
		{"a bulk length over the limit", "*1\r\n$999999999999\r\n", []string{"-ERR Protocol error: invalid bulk length"}},
		{"a negative bulk length", "*1\r\n$-5\r\n", []string{"-ERR Protocol error: invalid bulk length"}},
		{"a missing $", "*1\r\n+PING\r\n", []string{"-ERR Protocol error: expected '$', got '+'"}},
		{"an inline line too long", strings.Repeat("a", 70<<10), []string{"-ERR Protocol error: too big inline request"}},
		{"a multibulk header too long", "*" + strings.Repeat("1", 70<<10), []string{"-ERR Protocol error: too big mbulk count string"}},
		{"a bulk header too long", "*1\r\n$" + strings.Repeat("1", 70<<10), []string{"-ERR Protocol error: too big bulk count string"}},
		{"a command split across reads still parses", "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n", []string{"$5", "hello"}},
	} {
		protoErr := strings.Contains(tc.want[0], "Protocol error")
		lines := len(tc.want)
		if protoErr {
			lines++
		}
		got := rawExchange(t, addr, tc.req, lines)
		for i, w := range tc.want {
			if i >= len(got) || !strings.HasPrefix(got[i], w) {
				t.Errorf("%s: replies %q, want %q", tc.name, got, tc.want)
				break
			}
		}
		if protoErr && len(got) > len(tc.want) {
			t.Errorf("%s: the connection went on after a protocol error: %q", tc.name, got)
		}
	}
}

// TestSplitArgs: Redis's sdssplitargs, including its escapes.
func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"  a  b ", []string{"a", "b"}, true},
		{`"a b" c`, []string{"a b", "c"}, true},
		{`"\n\r\t\b\a\\\"x"`, []string{"\n\r\t\b\a\\\"x"}, true},
		{`"\x41\x4a\xzz"`, []string{"AJxzz"}, true},
		{`'it\'s' "" ''`, []string{"it's", "", ""}, true},
		{`'a\nb'`, []string{`a\nb`}, true},
		{`"unterminated`, nil, false},
		{`'unterminated`, nil, false},
		{`"a"b`, nil, false},
		{`'a'b`, nil, false},
	} {
		got, ok := splitArgs([]byte(tc.line), nil)
		if ok != tc.ok || len(got) != len(tc.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("splitArgs(%q) = %q; want %q", tc.line, got, tc.want)
			}
		}
	}
}

// TestGlob: Redis's stringmatchlen cases.
func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		nocase     bool
		want       bool
	}{
		{"*", "", false, false}, // as Redis: KEYS * takes every key without matching, "" included
		{"*", "anything", false, true},
		{"h?llo", "hello", false, true},
		{"h?llo", "hllo", false, false},
		{"h*llo", "hllo", false, true},
		{"h*llo", "heeeello", false, true},
		{"h[ae]llo", "hallo", false, true},
		{"h[ae]llo", "hillo", false, false},
		{"h[^e]llo", "hallo", false, true},
		{"h[^e]llo", "hello", false, false},
		{"h[a-b]llo", "hbllo", false, true},
		{"h[b-a]llo", "hallo", false, true},
		{"h[a-b]llo", "hcllo", false, false},
		{`h\*llo`, "h*llo", false, true},
		{`h\*llo`, "hello", false, false},
		{"HELLO", "hello", true, true},
		{"HELLO", "hello", false, false},
		{"h[A-Z]llo", "hello", true, true},
		{"a*b*c*d", "aXbXcXd", false, true},
		{"a*b*c*d", "aXbXcX", false, false},
		{"[abc", "b", false, true},
		{"*a", "", false, false},
		{"a**", "a", false, true},
		{strings.Repeat("*a", 30) + "b", strings.Repeat("a", 60), false, false}, // no exponential blowup
	} {
		if got := globMatch([]byte(tc.pattern), []byte(tc.s), tc.nocase); got != tc.want {
			t.Errorf("globMatch(%q, %q, %v) = %v, want %v", tc.pattern, tc.s, tc.nocase, got, tc.want)
		}
	}
}
