// Package server wires Latchkey together: it builds the provider and the
// admin API from the configuration and the store, mounts them on the public
// and admin listeners with the shared middleware (body limits, panic
// recovery, metrics, access logs), and runs both with graceful shutdown.
// It is the only package that imports all the others.
package server
