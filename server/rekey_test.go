package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp/server"
)

// TestRekeyDuringTransfers: uploads and downloads go on across SSH key
// re-exchanges (both ends re-key every MiB) with the read gate on every
// connection and the requests in flight of all sessions sharing two
// places: four sessions at once, two connections of two SFTP channels
// each. x/crypto holds writes during a key exchange, whose messages the
// gate's reads bring in: a gate holding them, or a session waiting for a
// place held by one whose replies wait for the exchange, would hang.
// The data must arrive intact; the time limit only detects a hang.
func TestRekeyDuringTransfers(t *testing.T) {
	const (
		conns   = 2
		perConn = 2
		size    = 32 << 20
		hang    = 120 * time.Second
		// Both ends re-key after this many bytes each way.
		rekeyEvery = 1 << 20
	)
	ts := startServer(t, func(s *server.Server) {
		s.Requests = server.NewRequestBudget(2, nil)
		server.SetRekeyThreshold(s, rekeyEvery)
	})
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)

	done := make(chan struct{})
	errs := make(chan error, conns*perConn)
	var wg sync.WaitGroup
	for i := range conns {
		cfg := clientConfig("alice-xt", "pw-alice-xt")
		cfg.RekeyThreshold = rekeyEvery
		client, banner, err := ts.dial("127.0.0.1", cfg)
		if err != nil {
			t.Fatalf("login: %v (banner %q)", err, banner)
		}
		t.Cleanup(func() { client.Close() })
		for j := range perConn {
			c, err := sftp.NewClient(client, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := roundTrip(c, fmt.Sprintf("/f%d-%d", i, j), data, want); err != nil {
					errs <- fmt.Errorf("session %d of connection %d: %w", j, i, err)
				}
			}()
		}
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(hang):
		buf := make([]byte, 1<<20)
		t.Fatalf("transfers not done after %v; goroutines:\n%s", hang, buf[:runtime.Stack(buf, true)])
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// roundTrip uploads data to name and downloads it back, checking its
// SHA-256.
func roundTrip(c *sftp.Client, name string, data []byte, want [sha256.Size]byte) error {
	f, err := c.Create(name)
	if err != nil {
		return err
	}
	if n, err := f.ReadFrom(bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		f.Close()
		return fmt.Errorf("upload: %d bytes, %v", n, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("upload close: %w", err)
	}
	f, err = c.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if n, err := f.WriteTo(h); err != nil || n != int64(len(data)) {
		return fmt.Errorf("download: %d bytes, %v", n, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		return fmt.Errorf("download: SHA-256 %x, want %x", got, want)
	}
	return nil
}
