// Package admin is Latchkey's management service: client registration with
// RFC 7591 metadata and its validation, secret rotation, and the HTTP admin
// API on the admin listener. The CLI calls the same Service, so the shell and
// the API apply the same rules.
package admin
