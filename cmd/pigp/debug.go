package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// debugServer serves net/http/pprof on debug_listen, a loopback address
// (config.Validate refuses any other): profiles of a running node without
// perf, e.g. `go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=30`.
type debugServer struct {
	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

// StartDebug starts the pprof listener when debug_listen is set.
func (a *App) StartDebug() error {
	if a.Config.DebugListen == "" {
		return nil
	}
	logger := a.Logger.With("component", "debug")
	ln, err := net.Listen("tcp", a.Config.DebugListen)
	if err != nil {
		return fmt.Errorf("debug: listen on %s: %w", a.Config.DebugListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("debug listener stopped", "error", err)
		}
	}()
	logger.Warn("pprof debug listener on", "addr", ln.Addr().String())
	a.debug = d
	return nil
}

// DebugAddr returns the debug listener's address (nil: none).
func (a *App) DebugAddr() net.Addr {
	if a.debug == nil {
		return nil
	}
	return a.debug.ln.Addr()
}

// closeDebug stops the pprof listener.
func (a *App) closeDebug(ctx context.Context) error {
	if a.debug == nil {
		return nil
	}
	err := a.debug.srv.Shutdown(ctx)
	a.debug.wg.Wait()
	a.debug = nil
	return err
}
