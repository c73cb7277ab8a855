package main

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// localServer is an HTTP server of the tool's own (a receiver, a baseline) on a free loopback
// port.
type localServer struct {
	addr   string // host:port
	srv    *http.Server
	served chan struct{}
}

// serveLocal starts serving h on a free loopback port.
func serveLocal(h http.Handler) (*localServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &localServer{addr: ln.Addr().String(), served: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// close stops the server and waits until it has stopped serving.
func (s *localServer) close() {
	_ = s.srv.Close()
	<-s.served
}
