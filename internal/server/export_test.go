package server

import (
	"context"

	"github.com/latchkey/latchkey/internal/backchannel"
	"github.com/latchkey/latchkey/internal/janitor"
	"github.com/latchkey/latchkey/internal/keys"
)

// WithBackground replaces the background tasks Run starts, so a test can
// watch when they stop.
func WithBackground(tasks ...func(context.Context)) Option {
	return func(o *options) { o.background = tasks }
}

// WithBackchannel lets f adjust the back-channel deliverer's options.
func WithBackchannel(f func(*backchannel.Options)) Option {
	return func(o *options) { o.backchannel = append(o.backchannel, f) }
}

// WithKeyOptions lets f adjust the key manager's options.
func WithKeyOptions(f func(*keys.Options)) Option {
	return func(o *options) { o.keys = append(o.keys, f) }
}

// Backchannel is the server's back-channel logout deliverer.
func (s *Server) Backchannel() *backchannel.Deliverer { return s.backchannel }

// Janitor is the server's janitor (its passes are counted in the metrics).
func (s *Server) Janitor() *janitor.Janitor { return s.janitor }

// Keys is the server's signing keys.
func (s *Server) Keys() *keys.Manager { return s.keys }
