package main

import (
	"bytes"
	"math"
	"strconv"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// The keyspace commands.

func cmdDel(s *server, c *client, args [][]byte) {
	n, err := s.st.DeleteKeys(args[1:])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}

func cmdExists(s *server, c *client, args [][]byte) {
	n, err := s.st.Exists(args[1:])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}

func cmdType(s *server, c *client, args [][]byte) {
	_, ok, err := s.st.TTL(args[1])
	switch {
	case err != nil:
		c.storeErr(err)
	case ok:
		c.simple("string")
	default:
		c.simple("none")
	}
}

func cmdDBSize(s *server, c *client, _ [][]byte) { c.int(int64(s.st.Len())) }

// matcher returns the glob matcher of a KEYS or SCAN pattern, nil for "*".
func matcher(pattern []byte) func([]byte) bool {
	if bytes.Equal(pattern, []byte("*")) {
		return nil
	}
	p := bytes.Clone(pattern)
	return func(k []byte) bool { return globMatch(p, k, false) }
}

func cmdKeys(s *server, c *client, args [][]byte) {
	var keys [][]byte
	err := s.st.Keys(matcher(args[1]), func(k []byte) { keys = append(keys, bytes.Clone(k)) })
	if err != nil {
		c.storeErr(err)
		return
	}
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
		if c.flushEvery() != nil {
			return
		}
	}
}

func cmdScan(s *server, c *client, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.err("ERR invalid cursor")
		return
	}
	count := int64(10)
	var match func([]byte) bool
	onlyStrings := true
	for i := 2; i < len(args); i += 2 {
		if i+1 == len(args) {
			c.syntaxErr()
			return
		}
		switch a := args[i]; {
		case eqFold(a, "count"):
			n, ok := store.ParseInt(args[i+1])
			if !ok {
				c.notInteger()
				return
			}
			if n < 1 {
				c.syntaxErr()
				return
			}
			count = min(n, math.MaxInt32)
		case eqFold(a, "match"):
			match = matcher(args[i+1])
		case eqFold(a, "type"):
			onlyStrings = eqFold(args[i+1], "string")
		default:
			c.syntaxErr()
			return
		}
	}
	var keys [][]byte
	next, err := s.st.Scan(cursor, int(count), func(k []byte) {
		if onlyStrings && (match == nil || match(k)) {
			keys = append(keys, bytes.Clone(k))
		}
	})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.array(2)
	var num [20]byte
	c.bulk(strconv.AppendUint(num[:0], next, 10))
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

// expireCond parses EXPIRE's options from args[3:], as Redis 7's
// parseExtendedExpireArgumentsOrReply.
func expireCond(c *client, args [][]byte) (store.ExpireCond, bool) {
	var cond store.ExpireCond
	for _, a := range args[3:] {
		switch {
		case eqFold(a, "nx"):
			cond |= store.ExpireNX
		case eqFold(a, "xx"):
			cond |= store.ExpireXX
		case eqFold(a, "gt"):
			cond |= store.ExpireGT
		case eqFold(a, "lt"):
			cond |= store.ExpireLT
		default:
			c.err("ERR Unsupported option " + clip(a, 128))
			return 0, false
		}
	}
	switch {
	case cond&store.ExpireNX != 0 && cond != store.ExpireNX:
		c.err("ERR NX and XX, GT or LT options at the same time are not compatible")
		return 0, false
	case cond&store.ExpireGT != 0 && cond&store.ExpireLT != 0:
		c.err("ERR GT and LT options at the same time are not compatible")
		return 0, false
	}
	return cond, true
}

func cmdExpire(s *server, c *client, args [][]byte) { expire(s, c, args, false, false, "expire") }
func cmdPExpire(s *server, c *client, args [][]byte) {
	expire(s, c, args, true, false, "pexpire")
}
func cmdExpireAt(s *server, c *client, args [][]byte) {
	expire(s, c, args, false, true, "expireat")
}
func cmdPExpireAt(s *server, c *client, args [][]byte) {
	expire(s, c, args, true, true, "pexpireat")
}

// expire is Redis's expireGenericCommand: a time in the past deletes the
// key.
func expire(s *server, c *client, args [][]byte, ms, absolute bool, name string) {
	cond, ok := expireCond(c, args)
	if !ok {
		return
	}
	when, ok := store.ParseInt(args[2])
	if !ok {
		c.notInteger()
		return
	}
	if !ms {
		if when > math.MaxInt64/1000 || when < math.MinInt64/1000 {
			c.err("ERR invalid expire time in '" + name + "' command")
			return
		}
		when *= 1000
	}
	if !absolute {
		now := s.st.Now()
		if when > math.MaxInt64-now {
			c.err("ERR invalid expire time in '" + name + "' command")
			return
		}
		when += now
	}
	done, err := s.st.Expire(args[1], when, cond)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.bool(done)
}

func cmdTTL(s *server, c *client, args [][]byte)  { ttl(s, c, args, false, false) }
func cmdPTTL(s *server, c *client, args [][]byte) { ttl(s, c, args, true, false) }
func cmdExpireTime(s *server, c *client, args [][]byte) {
	ttl(s, c, args, false, true)
}
func cmdPExpireTime(s *server, c *client, args [][]byte) {
	ttl(s, c, args, true, true)
}

// ttl is Redis's ttlGenericCommand: -2 for no key, -1 for no TTL, else the
// time left (or the expire time), seconds rounded to the nearest.
func ttl(s *server, c *client, args [][]byte, ms, absolute bool) {
	at, ok, err := s.st.TTL(args[1])
	switch {
	case err != nil:
		c.storeErr(err)
		return
	case !ok:
		c.int(-2)
		return
	case at == 0:
		c.int(-1)
		return
	}
	v := at
	if !absolute {
		v = max(at-s.st.Now(), 0)
	}
	if !ms {
		v = (v + 500) / 1000
	}
	c.int(v)
}

func cmdPersist(s *server, c *client, args [][]byte) {
	done, err := s.st.Persist(args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.bool(done)
}

// cmdFlush is FLUSHDB and FLUSHALL [ASYNC|SYNC]: one database, so both
// empty it; FLUSHALL then saves if save points are configured, as Redis.
func cmdFlush(s *server, c *client, args [][]byte) {
	if len(args) > 2 || len(args) == 2 && !eqFold(args[1], "async") && !eqFold(args[1], "sync") {
		c.syntaxErr()
		return
	}
	if err := s.st.Flush(); err != nil {
		c.storeErr(err)
		return
	}
	if eqFold(args[0], "flushall") && len(s.cfg.savePoints()) > 0 {
		if err := s.saveNow(); err != nil {
			s.logf("FLUSHALL: saving the empty store: %v", err)
		}
	}
	c.ok()
}
