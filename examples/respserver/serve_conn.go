package main

// handle serves one connection in a goroutine of its own until it closes,
// QUIT or a protocol error: the server's way where there are no event
// loops (ioLoops 0, or not Linux).
func (s *server) handle(c *client) {
	defer s.forget(c)
	c.sr = s.st.NewReader()
	defer c.sr.Close()
	for {
		if s.runBuffered(c, nil) == mustClose {
			c.flush()
			return
		}
		// Pipelining: the replies go out when no command is left.
		if len(c.out) > 0 && c.flush() != nil {
			return
		}
		c.rd.shrink()
		if err := c.rd.fill(); err != nil {
			return
		}
		c.counters.netIn.Add(c.rd.takeRead())
	}
}
