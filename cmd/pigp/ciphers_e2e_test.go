package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/server"
)

// opensshCiphers is OpenSSH 9's default client order.
var opensshCiphers = []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128CTR, ssh.CipherAES192CTR,
	ssh.CipherAES256CTR, ssh.CipherAES128GCM, ssh.CipherAES256GCM}

// negotiatedCipher logs in as alice with the given identification and
// cipher list and returns the cipher the server chose.
func negotiatedCipher(t *testing.T, e *env, version string, ciphers []string) string {
	t.Helper()
	cfg := sshConfig("alice-xt", e.alice)
	cfg.ClientVersion = version
	cfg.Ciphers = ciphers
	c, err := ssh.Dial("tcp", e.addr, cfg)
	if err != nil {
		t.Fatalf("%s with %v: %v", version, ciphers, err)
	}
	defer c.Close()
	return c.Conn.(ssh.AlgorithmsConnMetadata).Algorithms().Write.Cipher
}

// TestCipherOffer: the server chooses the cipher, the first of its list
// that the client supports, whatever the client's order. With AES in
// hardware, OpenSSH's defaults (chacha20-poly1305 and AES-CTR before
// AES-GCM) get AES-GCM, a client without GCM (JSch, libssh2) still gets
// AES-CTR, one restricted to aes256-ctr gets it; without AES in hardware,
// chacha20-poly1305 comes first. With ssh.ciphers set, its order is the
// server's preference and nothing else is offered.
func TestCipherOffer(t *testing.T) {
	hw := server.HasAESHardware()
	t.Logf("AES in hardware: %v", hw)
	e := startEnv(t, "sqlite", nil)
	for _, c := range []struct {
		version  string
		ciphers  []string
		hw, soft string
	}{
		{"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", opensshCiphers, ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305},
		{"SSH-2.0-libssh_0.10.6", opensshCiphers, ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305},
		{"SSH-2.0-JSCH-0.1.55", []string{ssh.CipherAES128CTR, ssh.CipherAES256CTR}, ssh.CipherAES128CTR, ssh.CipherAES128CTR},
		{"SSH-2.0-OpenSSH_9.2p1", []string{ssh.CipherAES256CTR}, ssh.CipherAES256CTR, ssh.CipherAES256CTR},
		{"SSH-2.0-OpenSSH_9.2p1", []string{ssh.CipherAES128CTR, ssh.CipherAES256GCM}, ssh.CipherAES256GCM, ssh.CipherAES256GCM},
	} {
		want := map[bool]string{true: c.hw, false: c.soft}[hw]
		if got := negotiatedCipher(t, e, c.version, c.ciphers); got != want {
			t.Errorf("%s offering %v got %s, want %s", c.version, c.ciphers, got, want)
		}
	}

	set := startEnv(t, "sqlite", func(c *config.Config) {
		c.SSH.Ciphers = []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM}
	})
	if got := negotiatedCipher(t, set, "SSH-2.0-OpenSSH_9.2p1", opensshCiphers); got != ssh.CipherChaCha20Poly1305 {
		t.Errorf("with ssh.ciphers set, OpenSSH got %s, want chacha20-poly1305", got)
	}
	if got := negotiatedCipher(t, set, "SSH-2.0-Go", []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}); got != ssh.CipherAES256GCM {
		t.Errorf("with ssh.ciphers set, a GCM client got %s, want aes256-gcm", got)
	}
	cfg := sshConfig("alice-xt", set.alice)
	cfg.Ciphers = []string{ssh.CipherAES128CTR}
	if c, err := ssh.Dial("tcp", set.addr, cfg); err == nil {
		c.Close()
		t.Error("aes128-ctr accepted although ssh.ciphers does not list it")
	}
}

// TestCipherOfferOpenSSHClient: the real OpenSSH client, with its
// defaults, negotiates AES-GCM when the CPU has AES.
func TestCipherOfferOpenSSHClient(t *testing.T) {
	needTool(t, "sftp", "sshpass")
	e := startEnv(t, "sqlite", nil)
	bf := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(bf, []byte("pwd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
		"-o", "PasswordAuthentication=no", "-o", "BatchMode=yes", "-v", "-i", e.keyFile, "-P", e.port, "-b", bf, "alice-xt@" + e.host}
	out, err := exec.CommandContext(ctx, "sftp", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`kex: server->client cipher: (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no cipher in sftp -v:\n%s", out)
	}
	want := []string{ssh.CipherChaCha20Poly1305}
	if server.HasAESHardware() {
		want = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}
	}
	if !slices.Contains(want, string(m[1])) {
		t.Errorf("OpenSSH negotiated %s, want one of %v", m[1], want)
	}
}
