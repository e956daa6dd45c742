package main

import (
	"errors"
	"math"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// The string commands. GET and SET are the hot path: no allocation.

func cmdGet(s *server, c *client, args [][]byte) {
	v, err := c.sr.AppendGet(c.val[:0], args[1])
	switch {
	case err == nil:
		c.val = v[:0]
		c.countHit(true)
		c.bulk(v)
	case err == store.ErrNotFound:
		c.countHit(false)
		c.null()
	default:
		c.storeErr(err)
	}
}

// expire kinds of SET and its family.
type expireKind uint8

const (
	noExpire   expireKind = iota
	expireEX              // seconds from now
	expirePX              // milliseconds from now
	expireEXAT            // unix seconds
	expirePXAT            // unix milliseconds
)

// expireTime converts an expire argument of SET, SETEX or PSETEX into
// unix milliseconds, as Redis's getExpireMillisecondsOrReply: not an
// integer is the usual error; zero, negative or overflowing is "invalid
// expire time in '<cmd>' command".
func expireTime(s *server, c *client, arg []byte, kind expireKind, cmd string) (int64, bool) {
	n, ok := store.ParseInt(arg)
	if !ok {
		c.notInteger()
		return 0, false
	}
	seconds := kind == expireEX || kind == expireEXAT
	if n <= 0 || seconds && n > math.MaxInt64/1000 {
		c.err("ERR invalid expire time in '" + cmd + "' command")
		return 0, false
	}
	if seconds {
		n *= 1000
	}
	if kind == expireEX || kind == expirePX {
		now := s.st.Now()
		if n > math.MaxInt64-now {
			c.err("ERR invalid expire time in '" + cmd + "' command")
			return 0, false
		}
		n += now
	}
	return n, true
}

// parseSetOptions reads SET's options from args[3:], as Redis 7's
// parseExtendedStringArgumentsOrReply: NX and XX, KEEPTTL and an expiry,
// two expiries, or an expiry without its value are a syntax error.
func parseSetOptions(s *server, c *client, args [][]byte) (store.SetOptions, bool) {
	var o store.SetOptions
	kind := noExpire
	var when []byte
	for i := 3; i < len(args); i++ {
		a := args[i]
		k := noExpire
		switch {
		case eqFold(a, "nx") && !o.IfPresent:
			o.IfAbsent = true
			continue
		case eqFold(a, "xx") && !o.IfAbsent:
			o.IfPresent = true
			continue
		case eqFold(a, "get"):
			o.Get = true
			continue
		case eqFold(a, "keepttl") && kind == noExpire:
			o.KeepTTL = true
			continue
		case eqFold(a, "ex"):
			k = expireEX
		case eqFold(a, "px"):
			k = expirePX
		case eqFold(a, "exat"):
			k = expireEXAT
		case eqFold(a, "pxat"):
			k = expirePXAT
		}
		if k == noExpire || o.KeepTTL || kind != noExpire || i+1 == len(args) {
			c.syntaxErr()
			return o, false
		}
		kind, when = k, args[i+1]
		i++
	}
	if kind != noExpire {
		at, ok := expireTime(s, c, when, kind, "set")
		if !ok {
			return o, false
		}
		o.ExpireAt = at
	}
	return o, true
}

func cmdSet(s *server, c *client, args [][]byte) {
	if len(args) == 3 { // the fast path: no options
		if _, _, _, err := s.st.Set(nil, args[1], args[2], store.SetOptions{}); err != nil {
			c.storeErr(err)
			return
		}
		c.ok()
		return
	}
	o, ok := parseSetOptions(s, c, args)
	if !ok {
		return
	}
	old, existed, stored, err := s.st.Set(c.val[:0], args[1], args[2], o)
	switch {
	case err != nil:
		c.storeErr(err)
	case o.Get && existed:
		c.val = old[:0]
		c.bulk(old)
	case o.Get, !stored:
		c.null()
	default:
		c.ok()
	}
}

func cmdSetNX(s *server, c *client, args [][]byte) {
	_, _, stored, err := s.st.Set(nil, args[1], args[2], store.SetOptions{IfAbsent: true})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.bool(stored)
}

func cmdSetEX(s *server, c *client, args [][]byte)  { setWithExpire(s, c, args, expireEX, "setex") }
func cmdPSetEX(s *server, c *client, args [][]byte) { setWithExpire(s, c, args, expirePX, "psetex") }

// setWithExpire is SETEX and PSETEX: key, time, value.
func setWithExpire(s *server, c *client, args [][]byte, kind expireKind, name string) {
	at, ok := expireTime(s, c, args[2], kind, name)
	if !ok {
		return
	}
	if _, _, _, err := s.st.Set(nil, args[1], args[3], store.SetOptions{ExpireAt: at}); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

func cmdGetSet(s *server, c *client, args [][]byte) {
	old, existed, _, err := s.st.Set(c.val[:0], args[1], args[2], store.SetOptions{Get: true})
	switch {
	case err != nil:
		c.storeErr(err)
	case existed:
		c.val = old[:0]
		c.bulk(old)
	default:
		c.null()
	}
}

func cmdGetDel(s *server, c *client, args [][]byte) {
	v, found, err := s.st.GetDel(c.val[:0], args[1])
	switch {
	case err != nil:
		c.storeErr(err)
	case found:
		c.val = v[:0]
		c.bulk(v)
	default:
		c.null()
	}
}

func cmdMGet(s *server, c *client, args [][]byte) {
	c.array(len(args) - 1)
	err := s.st.MGet(args[1:], func(_ int, v []byte, ok bool) {
		c.countHit(ok)
		if ok {
			c.bulk(v)
		} else {
			c.null()
		}
	})
	if err != nil { // cannot happen before the first value: the store checks first
		c.storeErr(err)
	}
}

func cmdMSet(s *server, c *client, args [][]byte) {
	if len(args)%2 != 1 {
		c.err("ERR wrong number of arguments for 'mset' command")
		return
	}
	if _, err := s.st.MSet(args[1:], false); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

func cmdMSetNX(s *server, c *client, args [][]byte) {
	if len(args)%2 != 1 {
		c.err("ERR wrong number of arguments for 'msetnx' command")
		return
	}
	stored, err := s.st.MSet(args[1:], true)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.bool(stored)
}

func cmdIncr(s *server, c *client, args [][]byte) { incrBy(s, c, args[1], 1) }
func cmdDecr(s *server, c *client, args [][]byte) { incrBy(s, c, args[1], -1) }

func cmdIncrBy(s *server, c *client, args [][]byte) {
	n, ok := store.ParseInt(args[2])
	if !ok {
		c.notInteger()
		return
	}
	incrBy(s, c, args[1], n)
}

func cmdDecrBy(s *server, c *client, args [][]byte) {
	n, ok := store.ParseInt(args[2])
	switch {
	case !ok:
		c.notInteger()
	case n == math.MinInt64:
		c.err("ERR decrement would overflow")
	default:
		incrBy(s, c, args[1], -n)
	}
}

func incrBy(s *server, c *client, key []byte, delta int64) {
	n, err := s.st.IncrBy(key, delta)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(n)
}

func cmdAppend(s *server, c *client, args [][]byte) {
	n, err := s.st.Append(args[1], args[2])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}

func cmdStrLen(s *server, c *client, args [][]byte) {
	n, err := s.st.StrLen(args[1])
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}
