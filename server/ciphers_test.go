package server

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestCipherOfferSecure: the default offer, with or without AES hardware,
// holds only ciphers x/crypto deems secure, every family a client may
// need (AES-CTR for libssh2 1.10 and JSch), and puts the fast one first.
func TestCipherOfferSecure(t *testing.T) {
	insecure := ssh.InsecureAlgorithms().Ciphers
	for _, hw := range []bool{true, false} {
		offer := CipherOffer(hw)
		for _, c := range offer {
			if slices.Contains(insecure, c) || !slices.Contains(ssh.SupportedAlgorithms().Ciphers, c) {
				t.Errorf("offer %v holds %s", offer, c)
			}
		}
		for _, c := range []string{ssh.CipherAES128CTR, ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305} {
			if !slices.Contains(offer, c) {
				t.Errorf("offer %v without %s", offer, c)
			}
		}
		first := map[bool]string{true: ssh.CipherAES128GCM, false: ssh.CipherChaCha20Poly1305}[hw]
		if offer[0] != first {
			t.Errorf("AES hardware %v: offer %v, want %s first", hw, offer, first)
		}
	}
}

// TestPeekClientWithoutKexInit: a client that waits for the server's
// KEXINIT before sending its own gets the whole offer after a short wait,
// and every byte it sent reaches x/crypto.
func TestPeekClientWithoutKexInit(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	go func() {
		io.WriteString(cli, "hello\r\nSSH-2.0-Waiter\r\n")
	}()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(cli, b, len("SSH-2.0-pigp\r\n"))
		got <- b[:n]
	}()
	pc, algs, err := peekClient(srv, "SSH-2.0-pigp", 50*time.Millisecond, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(<-got) != "SSH-2.0-pigp\r\n" {
		t.Fatal("the server's identification was not sent first")
	}
	if algs[0] != nil || algs[1] != nil {
		t.Fatalf("ciphers %v from a client that sent no KEXINIT", algs)
	}
	b := make([]byte, 64)
	n, _ := pc.Read(b)
	if !bytes.Equal(b[:n], []byte("hello\r\nSSH-2.0-Waiter\r\n")) {
		t.Fatalf("replayed %q", b[:n])
	}
	if n, err := pc.Write([]byte("SSH-2.0-pigp\r\n")); err != nil || n != 14 {
		t.Fatalf("x/crypto's identification write: %d, %v", n, err)
	}
}
