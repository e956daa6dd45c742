//go:build !linux

package main

import "net"

// defaultLoops: without epoll, a goroutine per connection.
func defaultLoops() int { return 0 }

// eventLoop exists on Linux only.
type eventLoop struct{}

func (s *server) startLoops() error                            { return nil }
func (s *server) pickLoop(c *client, conn net.Conn) *eventLoop { return nil }
func (l *eventLoop) post(c *client) bool                       { return false }
func (l *eventLoop) stop()                                     {}
