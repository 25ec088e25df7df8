package server_test

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/server"
)

// TestAlgorithms: every algorithm x/crypto/ssh calls insecure is refused
// (key exchange, cipher, MAC, host key), and a client gets in with each
// secure cipher.
func TestAlgorithms(t *testing.T) {
	ts := startServer(t, nil)
	insecure := ssh.InsecureAlgorithms()
	try := func(cfg ssh.Config, hostKeys []string) error {
		cc := clientConfig("alice-xt", "pw-alice-xt")
		cc.Config, cc.HostKeyAlgorithms = cfg, hostKeys
		c, _, err := ts.dial(ipOf(1), cc)
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, k := range insecure.KeyExchanges {
		if try(ssh.Config{KeyExchanges: []string{k}}, nil) == nil {
			t.Errorf("kex %s accepted", k)
		}
	}
	for _, c := range insecure.Ciphers {
		if try(ssh.Config{Ciphers: []string{c}}, nil) == nil {
			t.Errorf("cipher %s accepted", c)
		}
	}
	for _, m := range insecure.MACs {
		if try(ssh.Config{Ciphers: []string{ssh.CipherAES128CTR}, MACs: []string{m}}, nil) == nil {
			t.Errorf("mac %s accepted", m)
		}
	}
	if try(ssh.Config{}, insecure.HostKeys) == nil {
		t.Error("insecure host key algorithm accepted")
	}
	for _, c := range []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES128CTR, ssh.CipherAES256CTR} {
		if err := try(ssh.Config{Ciphers: []string{c}}, nil); err != nil {
			t.Errorf("cipher %s refused: %v", c, err)
		}
	}
}

// TestLoadOrCreateHostKeys: the host keys are generated once, 0600, and
// the same keys are read at every later start, even when several nodes
// start at once on one directory.
func TestLoadOrCreateHostKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hostkeys")
	fingerprints := func() []string {
		keys, err := server.LoadOrCreateHostKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			out = append(out, ssh.FingerprintSHA256(k.PublicKey()))
		}
		return out
	}
	var wg sync.WaitGroup
	results := make([][]string, 4)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = fingerprints() }()
	}
	wg.Wait()
	results = append(results, fingerprints())
	if len(results[0]) != 2 {
		t.Fatalf("%d host keys, want ed25519 and ECDSA", len(results[0]))
	}
	for _, r := range results[1:] {
		if r[0] != results[0][0] || r[1] != results[0][1] {
			t.Fatalf("host keys differ between starts: %v", results)
		}
	}
	for _, f := range []string{"ssh_host_ed25519_key", "ssh_host_ecdsa_key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", f, fi, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%d files in the host key directory, want 2 (no temporary file left)", len(entries))
	}
	// The server presents them.
	keys, _ := server.LoadOrCreateHostKeys(dir)
	ts := startServer(t, func(s *server.Server) { s.HostKeys = keys })
	var got string
	cc := clientConfig("alice-xt", "pw-alice-xt")
	cc.HostKeyAlgorithms = []string{ssh.KeyAlgoED25519}
	cc.HostKeyCallback = func(_ string, _ net.Addr, k ssh.PublicKey) error { got = ssh.FingerprintSHA256(k); return nil }
	cc.Timeout = 10 * time.Second
	c, _, err := ts.dial(ipOf(1), cc)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got != results[0][0] {
		t.Fatalf("server presents %s, want %s", got, results[0][0])
	}
}
