package main

import (
	"errors"
	"strings"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
)

// command is one command of the table: what COMMAND reports about it and
// the function that runs it. Arity counts the name; negative means at
// least that many.
type command struct {
	name       string // lower case
	arity      int
	flags      []string
	firstKey   int
	lastKey    int
	step       int
	group      string
	since      string
	summary    string
	complexity string
	run        func(s *server, c *client, args [][]byte)
	// blocks: it can take long (a save, a whole-keyspace walk), and an
	// event loop runs it off the loop. It must not use c.sr: that Reader
	// is the loop's, and the loop goes on with its other connections.
	blocks bool
}

// blocking are the commands an event loop hands to a goroutine, so that
// the loop's other connections are served meanwhile (Redis blocks them
// all during a SAVE or a KEYS).
var blocking = []string{"save", "shutdown", "keys", "flushall", "flushdb"}

// commands is the table, by lower-case name; set up by init (the handlers
// refer to it through COMMAND).
var commands map[string]*command

func init() {
	commands = map[string]*command{}
	for _, cmd := range commandTable() {
		commands[cmd.name] = cmd
	}
	for _, name := range blocking {
		commands[name].blocks = true
	}
}

// lookupCommand finds a command by name, in any case, without allocating.
func lookupCommand(name []byte) *command {
	var lower [24]byte
	if len(name) > len(lower) {
		return nil
	}
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		lower[i] = ch
	}
	return commands[string(lower[:len(name)])]
}

var (
	wFast   = []string{"write", "denyoom", "fast"}
	wSlow   = []string{"write", "denyoom"}
	wDel    = []string{"write"}
	wDelF   = []string{"write", "fast"}
	rFast   = []string{"readonly", "fast"}
	rSlow   = []string{"readonly"}
	admin   = []string{"admin", "noscript"}
	connF   = []string{"noscript", "loading", "stale", "fast"}
	loading = []string{"loading", "stale"}
)

func commandTable() []*command {
	return []*command{
		// Strings.
		{"get", 2, rFast, 1, 1, 1, "string", "1.0.0", "Returns the string value of a key.", "O(1)", cmdGet, false},
		{"set", -3, wSlow, 1, 1, 1, "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", "O(1)", cmdSet, false},
		{"setnx", 3, wFast, 1, 1, 1, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", "O(1)", cmdSetNX, false},
		{"setex", 4, wSlow, 1, 1, 1, "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", "O(1)", cmdSetEX, false},
		{"psetex", 4, wSlow, 1, 1, 1, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", "O(1)", cmdPSetEX, false},
		{"getset", 3, wFast, 1, 1, 1, "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.", "O(1)", cmdGetSet, false},
		{"getdel", 2, wDelF, 1, 1, 1, "string", "6.2.0", "Returns the string value of a key after deleting the key.", "O(1)", cmdGetDel, false},
		{"mget", -2, rFast, 1, -1, 1, "string", "1.0.0", "Atomically returns the string values of one or more keys.", "O(N) where N is the number of keys to retrieve.", cmdMGet, false},
		{"mset", -3, wSlow, 1, -1, 2, "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.", "O(N) where N is the number of keys to set.", cmdMSet, false},
		{"msetnx", -3, wSlow, 1, -1, 2, "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.", "O(N) where N is the number of keys to set.", cmdMSetNX, false},
		{"incr", 2, wFast, 1, 1, 1, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "O(1)", cmdIncr, false},
		{"decr", 2, wFast, 1, 1, 1, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "O(1)", cmdDecr, false},
		{"incrby", 3, wFast, 1, 1, 1, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "O(1)", cmdIncrBy, false},
		{"decrby", 3, wFast, 1, 1, 1, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", "O(1)", cmdDecrBy, false},
		{"append", 3, wFast, 1, 1, 1, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.", cmdAppend, false},
		{"strlen", 2, rFast, 1, 1, 1, "string", "2.2.0", "Returns the length of a string value.", "O(1)", cmdStrLen, false},

		// Keys.
		{"del", -2, wDel, 1, -1, 1, "generic", "1.0.0", "Deletes one or more keys.", "O(N) where N is the number of keys that will be removed.", cmdDel, false},
		{"unlink", -2, wDelF, 1, -1, 1, "generic", "4.0.0", "Asynchronously deletes one or more keys.", "O(1) for each key removed regardless of its size.", cmdDel, false},
		{"exists", -2, rFast, 1, -1, 1, "generic", "1.0.0", "Determines whether one or more keys exist.", "O(N) where N is the number of keys to check.", cmdExists, false},
		{"type", 2, rFast, 1, 1, 1, "generic", "1.0.0", "Determines the type of value stored at a key.", "O(1)", cmdType, false},
		{"keys", 2, rSlow, 0, 0, 0, "generic", "1.0.0", "Returns all key names that match a pattern.", "O(N) with N being the number of keys in the database.", cmdKeys, false},
		{"scan", -2, rSlow, 0, 0, 0, "generic", "2.8.0", "Iterates over the key names in the database.", "O(1) for every call. O(N) for a complete iteration.", cmdScan, false},
		{"dbsize", 1, rFast, 0, 0, 0, "server", "1.0.0", "Returns the number of keys in the database.", "O(1)", cmdDBSize, false},
		{"expire", -3, wDelF, 1, 1, 1, "generic", "1.0.0", "Sets the expiration time of a key in seconds.", "O(1)", cmdExpire, false},
		{"pexpire", -3, wDelF, 1, 1, 1, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", "O(1)", cmdPExpire, false},
		{"expireat", -3, wDelF, 1, 1, 1, "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.", "O(1)", cmdExpireAt, false},
		{"pexpireat", -3, wDelF, 1, 1, 1, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.", "O(1)", cmdPExpireAt, false},
		{"ttl", 2, rFast, 1, 1, 1, "generic", "1.0.0", "Returns the expiration time in seconds of a key.", "O(1)", cmdTTL, false},
		{"pttl", 2, rFast, 1, 1, 1, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", "O(1)", cmdPTTL, false},
		{"expiretime", 2, rFast, 1, 1, 1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", "O(1)", cmdExpireTime, false},
		{"pexpiretime", 2, rFast, 1, 1, 1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", "O(1)", cmdPExpireTime, false},
		{"persist", 2, wDelF, 1, 1, 1, "generic", "2.2.0", "Removes the expiration time of a key.", "O(1)", cmdPersist, false},
		{"flushdb", -1, []string{"write"}, 0, 0, 0, "server", "1.0.0", "Remove all keys from the current database.", "O(N) where N is the total number of keys in all databases", cmdFlush, false},
		{"flushall", -1, []string{"write"}, 0, 0, 0, "server", "1.0.0", "Removes all keys from all databases.", "O(N) where N is the total number of keys in all databases", cmdFlush, false},

		// Connection.
		{"ping", -1, []string{"fast"}, 0, 0, 0, "connection", "1.0.0", "Returns the server's liveliness response.", "O(1)", cmdPing, false},
		{"echo", 2, []string{"fast"}, 0, 0, 0, "connection", "1.0.0", "Returns the given string.", "O(1)", cmdEcho, false},
		{"quit", -1, []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, 0, 0, 0, "connection", "1.0.0", "Closes the connection.", "O(1)", cmdQuit, false},
		{"select", 2, []string{"loading", "stale", "fast"}, 0, 0, 0, "connection", "1.0.0", "Changes the selected database.", "O(1)", cmdSelect, false},
		{"hello", -1, []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, 0, 0, 0, "connection", "6.0.0", "Handshakes with the Redis server.", "O(1)", cmdHello, false},
		{"client", -2, connF, 0, 0, 0, "connection", "2.4.0", "A container for client connection commands.", "Depends on subcommand.", cmdClient, false},

		// Server.
		{"info", -1, loading, 0, 0, 0, "server", "1.0.0", "Returns information and statistics about the server.", "O(1)", cmdInfo, false},
		{"config", -2, admin, 0, 0, 0, "server", "2.0.0", "A container for server configuration commands.", "Depends on subcommand.", cmdConfig, false},
		{"command", -1, loading, 0, 0, 0, "server", "2.8.13", "Returns detailed information about all commands.", "O(N) where N is the total number of Redis commands", cmdCommand, false},
		{"save", 1, []string{"admin", "noscript", "no_async_loading", "no_multi"}, 0, 0, 0, "server", "1.0.0", "Synchronously saves the database(s) to disk.", "O(N) where N is the total number of keys in all databases", cmdSave, false},
		{"bgsave", -1, []string{"admin", "noscript", "no_async_loading"}, 0, 0, 0, "server", "1.0.0", "Asynchronously saves the database(s) to disk.", "O(1)", cmdBgSave, false},
		{"lastsave", 1, []string{"loading", "stale", "fast"}, 0, 0, 0, "server", "1.0.0", "Returns the Unix timestamp of the last successful save to disk.", "O(1)", cmdLastSave, false},
		{"shutdown", -1, []string{"admin", "noscript", "loading", "stale", "no_multi", "allow_busy"}, 0, 0, 0, "server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)", cmdShutdown, false},
	}
}

// storeErr replies with the Redis error for a store's error.
func (c *client) storeErr(err error) {
	switch {
	case errors.Is(err, store.ErrNotInteger):
		c.notInteger()
	case errors.Is(err, store.ErrOverflow):
		c.err("ERR increment or decrement would overflow")
	case errors.Is(err, store.ErrTooLarge):
		c.err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	case errors.Is(err, folio.ErrNoMemory):
		c.err("OOM command not allowed: the store's memory is full (" + oneLine(err.Error()) + ")")
	case errors.Is(err, store.ErrClosed):
		c.err("ERR the server is shutting down")
	default:
		c.err("ERR " + oneLine(err.Error()))
	}
}

// oneLine keeps an error message on one line, as a RESP error must be.
func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

// eqFold reports whether b is s (lower case) in any case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != s[i] {
			return false
		}
	}
	return true
}
