package server

import "context"

// WithBackground replaces the background tasks Run starts, so a test can
// watch when they stop.
func WithBackground(tasks ...func(context.Context)) Option {
	return func(o *options) { o.background = tasks }
}
