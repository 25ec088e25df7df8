package server

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeListener returns the errors of script in turn (nil: a connection),
// then net.ErrClosed.
type fakeListener struct {
	script []error
	calls  int
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if l.calls >= len(l.script) {
		return nil, net.ErrClosed
	}
	err := l.script[l.calls]
	l.calls++
	if err != nil {
		return nil, err
	}
	c, other := net.Pipe()
	other.Close()
	return c, nil
}

func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestAcceptBackoff: out of descriptors, the accept loop waits longer
// each time (5 ms doubling up to 1 s) instead of spinning, logs about it
// at most once a second, and starts again from 5 ms after a success.
func TestAcceptBackoff(t *testing.T) {
	var script []error
	for range 12 {
		script = append(script, syscall.EMFILE)
	}
	script = append(script, nil, syscall.ENFILE, syscall.ENFILE)
	ln := &fakeListener{script: script}
	var logs bytes.Buffer
	var slept []time.Duration
	s := &Server{Logger: slog.New(slog.NewTextHandler(&logs, nil)), conns: map[net.Conn]struct{}{},
		perIP: map[string]int{}, unauth: map[string]int{}, accounts: map[int64]int{},
		closing: true, // the one connection is refused at once
		sleep:   func(d time.Duration) { slept = append(slept, d) }}
	s.wg.Add(1)
	s.serve(ln)
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000, 5, 10}
	if len(slept) != len(want) {
		t.Fatalf("slept %v, want %v ms", slept, want)
	}
	for i, d := range slept {
		if d != want[i]*time.Millisecond {
			t.Fatalf("slept %v, want %v ms", slept, want)
		}
	}
	if n := strings.Count(logs.String(), "accept failed, backing off"); n != 1 {
		t.Fatalf("%d log lines for 14 failures within a second, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Fatalf("the log does not name the error:\n%s", logs.String())
	}
}
