package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
)

// The connection and server commands.

func cmdPing(s *server, c *client, args [][]byte) {
	switch len(args) {
	case 1:
		c.simple("PONG")
	case 2:
		c.bulk(args[1])
	default:
		c.err("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdEcho(s *server, c *client, args [][]byte) { c.bulk(args[1]) }

func cmdQuit(s *server, c *client, _ [][]byte) {
	c.ok()
	c.quit = true
}

func cmdSelect(s *server, c *client, args [][]byte) {
	n, ok := store.ParseInt(args[1])
	switch {
	case !ok:
		c.notInteger()
	case n != 0:
		c.err("ERR DB index is out of range")
	default:
		c.ok()
	}
}

// cmdHello is HELLO [protover [AUTH username password] [SETNAME name]]:
// this server speaks RESP2 only. There are no passwords: AUTH as the
// default user succeeds, as with Redis's default "nopass" user.
func cmdHello(s *server, c *client, args [][]byte) {
	if len(args) >= 2 {
		v, ok := store.ParseInt(args[1])
		switch {
		case !ok:
			c.err("ERR Protocol version is not an integer or out of range")
			return
		case v != 2:
			c.err("NOPROTO unsupported protocol version")
			return
		}
	}
	var name []byte
	for i := 2; i < len(args); i++ {
		switch a := args[i]; {
		case eqFold(a, "auth") && i+2 < len(args):
			if !eqFold(args[i+1], "default") {
				c.err("WRONGPASS invalid username-password pair or user is disabled.")
				return
			}
			i += 2
		case eqFold(a, "setname") && i+1 < len(args):
			if !validName(args[i+1]) {
				c.err("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
			name = args[i+1]
			i++
		default:
			c.err("ERR Syntax error in HELLO option '" + clip(a, 128) + "'")
			return
		}
	}
	if name != nil {
		c.setName(name)
	}
	c.array(14)
	c.bulkStr("server")
	c.bulkStr("redis")
	c.bulkStr("version")
	c.bulkStr(redisVersion)
	c.bulkStr("proto")
	c.int(2)
	c.bulkStr("id")
	c.int(c.id)
	c.bulkStr("mode")
	c.bulkStr("standalone")
	c.bulkStr("role")
	c.bulkStr("master")
	c.bulkStr("modules")
	c.array(0)
}

// validName: a client name of printable ASCII without spaces, as Redis's
// clientSetName checks.
func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func (c *client) setName(b []byte) {
	if len(b) == 0 {
		c.name.Store(nil)
		return
	}
	n := string(b)
	c.name.Store(&n)
}

func (c *client) nameOf() string {
	if p := c.name.Load(); p != nil {
		return *p
	}
	return ""
}

func cmdClient(s *server, c *client, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "setname") && len(args) == 3:
		if !validName(args[2]) {
			c.err("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.setName(args[2])
		c.ok()
	case eqFold(sub, "getname") && len(args) == 2:
		if n := c.name.Load(); n != nil {
			c.bulkStr(*n)
		} else {
			c.null()
		}
	case eqFold(sub, "id") && len(args) == 2:
		c.int(c.id)
	case eqFold(sub, "setinfo") && len(args) == 4:
		if !eqFold(args[2], "lib-name") && !eqFold(args[2], "lib-ver") {
			c.err("ERR Unrecognized option '" + clip(args[2], 128) + "'")
			return
		}
		c.ok()
	case eqFold(sub, "info") && len(args) == 2:
		c.bulkStr(clientLine(c))
	case eqFold(sub, "list") && len(args) == 2:
		s.connMu.Lock()
		var lines []string
		for o := range s.clients {
			lines = append(lines, clientLine(o))
		}
		s.connMu.Unlock()
		sort.Strings(lines)
		c.bulkStr(strings.Join(lines, ""))
	case eqFold(sub, "help") && len(args) == 2:
		c.help("CLIENT", "GETNAME", "ID", "INFO", "LIST", "SETINFO <LIB-NAME|LIB-VER> <value>", "SETNAME <name>")
	case eqFold(sub, "setname"), eqFold(sub, "getname"), eqFold(sub, "id"), eqFold(sub, "setinfo"),
		eqFold(sub, "info"), eqFold(sub, "list"), eqFold(sub, "help"):
		c.err("ERR wrong number of arguments for 'client|" + strings.ToLower(string(sub)) + "' command")
	default:
		c.unknownSub(sub, "CLIENT")
	}
}

// clientLine is a client's line in CLIENT LIST, Redis's fields that apply.
func clientLine(c *client) string {
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d db=0 resp=2\n", c.id, c.addr,
		c.laddr, c.nameOf(), int64(time.Since(c.created).Seconds()))
}

func (c *client) unknownSub(sub []byte, cmd string) {
	c.err("ERR unknown subcommand '" + clip(sub, 128) + "'. Try " + cmd + " HELP.")
}

// help replies with a command's HELP: one line per subcommand.
func (c *client) help(cmd string, subs ...string) {
	c.array(len(subs) + 1)
	c.simple(cmd + " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
	for _, sub := range subs {
		c.simple(sub)
	}
}

func cmdInfo(s *server, c *client, args [][]byte) { c.bulkStr(s.info(args[1:])) }

func cmdConfig(s *server, c *client, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "get") && len(args) >= 3:
		seen := map[string]bool{}
		var names []string
		for _, pat := range args[2:] {
			for _, n := range paramNames(pat) {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
		c.array(2 * len(names))
		for _, n := range names {
			c.bulkStr(n)
			c.bulkStr(params[n].get(s.cfg))
		}
	case eqFold(sub, "set") && len(args) >= 4 && len(args)%2 == 0:
		// Check every name first, then set: all or nothing, as Redis 7.
		for i := 2; i < len(args); i += 2 {
			p, ok := params[strings.ToLower(string(args[i]))]
			if !ok || p.set == nil {
				c.err("ERR Unknown option or number of arguments for CONFIG SET - '" + clip(args[i], 128) + "'")
				return
			}
		}
		for i := 2; i < len(args); i += 2 {
			name := strings.ToLower(string(args[i]))
			if err := params[name].set(s.cfg, string(args[i+1])); err != nil {
				c.err("ERR CONFIG SET failed (possibly related to argument '" + name + "') - " + err.Error())
				return
			}
		}
		c.ok()
	case eqFold(sub, "resetstat") && len(args) == 2:
		s.resetStats()
		c.ok()
	case eqFold(sub, "rewrite") && len(args) == 2:
		c.err("ERR The server is running without a config file")
	case eqFold(sub, "help") && len(args) == 2:
		c.help("CONFIG", "GET <pattern>", "SET <directive> <value>", "RESETSTAT", "REWRITE")
	case eqFold(sub, "get"), eqFold(sub, "set"), eqFold(sub, "resetstat"), eqFold(sub, "rewrite"), eqFold(sub, "help"):
		c.err("ERR wrong number of arguments for 'config|" + strings.ToLower(string(sub)) + "' command")
	default:
		c.unknownSub(sub, "CONFIG")
	}
}

// cmdCommand is COMMAND [COUNT | DOCS [name...] | INFO [name...] | LIST].
func cmdCommand(s *server, c *client, args [][]byte) {
	if len(args) == 1 {
		c.commandInfos(allCommands())
		return
	}
	sub := args[1]
	named := func() []*command {
		if len(args) == 2 {
			return allCommands()
		}
		var cmds []*command
		for _, n := range args[2:] {
			cmds = append(cmds, lookupCommand(n))
		}
		return cmds
	}
	switch {
	case eqFold(sub, "count") && len(args) == 2:
		c.int(int64(len(commands)))
	case eqFold(sub, "list") && len(args) == 2:
		cmds := allCommands()
		c.array(len(cmds))
		for _, cmd := range cmds {
			c.bulkStr(cmd.name)
		}
	case eqFold(sub, "info"):
		c.commandInfos(named())
	case eqFold(sub, "docs"):
		var cmds []*command
		for _, cmd := range named() {
			if cmd != nil {
				cmds = append(cmds, cmd)
			}
		}
		c.array(2 * len(cmds))
		for _, cmd := range cmds {
			c.bulkStr(cmd.name)
			c.array(8)
			c.bulkStr("summary")
			c.bulkStr(cmd.summary)
			c.bulkStr("since")
			c.bulkStr(cmd.since)
			c.bulkStr("group")
			c.bulkStr(cmd.group)
			c.bulkStr("complexity")
			c.bulkStr(cmd.complexity)
		}
	case eqFold(sub, "help") && len(args) == 2:
		c.help("COMMAND", "(no subcommand)", "COUNT", "DOCS [<command-name> ...]", "INFO [<command-name> ...]", "LIST")
	default:
		c.unknownSub(sub, "COMMAND")
	}
}

func allCommands() []*command {
	cmds := make([]*command, 0, len(commands))
	for _, cmd := range commands {
		cmds = append(cmds, cmd)
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

// commandInfos replies with COMMAND INFO's entries (nil for an unknown
// name): name, arity, flags, first key, last key, step, ACL categories,
// tips, key specs, subcommands.
func (c *client) commandInfos(cmds []*command) {
	c.array(len(cmds))
	for _, cmd := range cmds {
		if cmd == nil {
			c.nullArray()
			continue
		}
		c.array(10)
		c.bulkStr(cmd.name)
		c.int(int64(cmd.arity))
		c.array(len(cmd.flags))
		for _, f := range cmd.flags {
			c.simple(f)
		}
		c.int(int64(cmd.firstKey))
		c.int(int64(cmd.lastKey))
		c.int(int64(cmd.step))
		c.array(1)
		c.simple("@" + cmd.group)
		c.array(0)
		c.array(0)
		c.array(0)
	}
}

func cmdSave(s *server, c *client, _ [][]byte) {
	if err := s.saveNow(); err != nil {
		if err == errBgsaveRunning {
			c.err(err.Error())
		} else {
			s.logf("SAVE: %v", err)
			c.err("ERR " + oneLine(err.Error()))
		}
		return
	}
	c.ok()
}

func cmdBgSave(s *server, c *client, args [][]byte) {
	schedule := false
	switch {
	case len(args) == 2 && eqFold(args[1], "schedule"):
		schedule = true
	case len(args) > 1:
		c.syntaxErr()
		return
	}
	msg, err := s.bgsave(schedule)
	if err != nil {
		c.err(err.Error())
		return
	}
	c.simple(msg)
}

func cmdLastSave(s *server, c *client, _ [][]byte) {
	s.persist.mu.Lock()
	t := s.persist.lastSave.Unix()
	s.persist.mu.Unlock()
	c.int(t)
}

// cmdShutdown is SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: a final
// save if save points are configured (or SAVE), then the server closes
// every connection, this one included, without a reply. A failed save
// refuses to shut down, unless FORCE.
func cmdShutdown(s *server, c *client, args [][]byte) {
	var nosave, save, force bool
	for _, a := range args[1:] {
		switch {
		case eqFold(a, "nosave"):
			nosave = true
		case eqFold(a, "save"):
			save = true
		case eqFold(a, "force"):
			force = true
		case eqFold(a, "now"):
		case eqFold(a, "abort"):
			c.err("ERR No shutdown in progress.")
			return
		default:
			c.syntaxErr()
			return
		}
	}
	if nosave && save {
		c.syntaxErr()
		return
	}
	if !nosave {
		if err := s.finalSave(save); err != nil && !force {
			s.logf("SHUTDOWN: the final save failed: %v", err)
			c.err("ERR Errors trying to SHUTDOWN. Check logs.")
			return
		}
	}
	s.logf("SHUTDOWN: the server is now ready to exit, bye bye...")
	c.quit = true
	s.shutdown()
}
