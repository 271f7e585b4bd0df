package store

import (
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// tcpUserTimeout is TCP_USER_TIMEOUT from linux/tcp.h (the syscall package
// does not name it).
const tcpUserTimeout = 0x12

// listenDialer dials the LISTEN connection with TCP keepalive probes and
// TCP_USER_TIMEOUT (RFC 5482): unacknowledged data, or keepalive probes,
// older than timeout make the kernel drop the connection. Keepalive alone
// does not end a connection whose sends go unanswered.
func listenDialer(timeout time.Duration) pgconn.DialFunc {
	d := &net.Dialer{
		Timeout: 10 * time.Second,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: timeout / 2, Interval: max(timeout/4, time.Second), Count: 3,
		},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(timeout.Milliseconds()))
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	return d.DialContext
}
