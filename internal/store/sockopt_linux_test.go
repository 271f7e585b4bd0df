package store

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
)

// The LISTEN connection carries TCP keepalive and TCP_USER_TIMEOUT, so the
// kernel too ends a connection whose peer went silent.
func TestListenDialerSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := listenDialer(4*time.Second)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE (s)", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 2},
		{"TCP_KEEPINTVL (s)", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 1},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 3},
		{"TCP_USER_TIMEOUT (ms)", syscall.IPPROTO_TCP, tcpUserTimeout, 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got int
			var gerr error
			if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), tc.level, tc.opt) }); err != nil {
				t.Fatal(err)
			}
			if gerr != nil || got != tc.want {
				t.Fatalf("got %d (%v), want %d", got, gerr, tc.want)
			}
		})
	}
}
