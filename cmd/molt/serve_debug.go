package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/internal/cli"
)

// debugAllowRemoteFlag is the flag an operator must give to serve the
// unauthenticated profiles where other hosts can reach them.
const debugAllowRemoteFlag = "debug-listen-allow-remote"

// debugListen is molt serve's --debug-listen: Go profiles (heap contents,
// goroutine stacks with arguments) with no authentication, so by default
// only on a loopback address.
type debugListen struct {
	addr        string
	allowRemote bool
}

// check refuses, as a usage error, an address that is not loopback unless
// the operator allowed it by name. Host names other than localhost are
// refused: what they resolve to can change after the check.
func (d debugListen) check() error {
	if d.addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(d.addr)
	if err != nil {
		return cli.Usage("--debug-listen: %q is not host:port (e.g. 127.0.0.1:6060)", d.addr)
	}
	if d.allowRemote || isLoopbackHost(host) {
		return nil
	}
	where := fmt.Sprintf("%q is not a loopback address", d.addr)
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		where = fmt.Sprintf("%q listens on every interface", d.addr)
	}
	return cli.Usage("--debug-listen: %s and the profiles have no authentication: use 127.0.0.1:%s, [::1]:%s or localhost:%s, or add --%s to serve them there anyway",
		where, port, port, port, debugAllowRemoteFlag)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// listen opens the address and logs where it listens. The address bound
// is checked again: "localhost" is only loopback if the resolver says so.
func (d debugListen) listen(log *zap.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		return nil, cli.Exit(1, fmt.Errorf("--debug-listen: %w", err))
	}
	bound, _ := netip.ParseAddrPort(ln.Addr().String())
	loopback := bound.Addr().IsLoopback()
	if !loopback && !d.allowRemote {
		ln.Close()
		return nil, cli.Usage("--debug-listen: %q resolved to %s, not a loopback address: use 127.0.0.1 or [::1], or add --%s", d.addr, bound.Addr(), debugAllowRemoteFlag)
	}
	url := "http://" + ln.Addr().String() + "/debug/pprof/"
	if loopback {
		log.Info("serving Go profiles on loopback, without authentication", zap.String("addr", url))
	} else {
		log.Warn("serving Go profiles to other hosts, without authentication ("+debugAllowRemoteFlag+")", zap.String("addr", url))
	}
	return ln, nil
}

// newDebugServer serves net/http/pprof for diagnosing memory and CPU use.
func newDebugServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
