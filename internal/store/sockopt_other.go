//go:build !linux

package store

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// listenDialer dials the LISTEN connection with TCP keepalive probes.
// TCP_USER_TIMEOUT is Linux's; elsewhere the heartbeat alone notices a
// silently dead connection.
func listenDialer(timeout time.Duration) pgconn.DialFunc {
	d := &net.Dialer{
		Timeout: 10 * time.Second,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: timeout / 2, Interval: max(timeout/4, time.Second), Count: 3,
		},
	}
	return d.DialContext
}
