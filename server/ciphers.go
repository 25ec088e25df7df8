package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/cpu"
)

// Why the server, not the client, chooses the cipher (measured with
// BenchmarkSSHCipher, CPU seconds per GiB of both ends in Go, on an AES-NI
// machine): AES-GCM 4.9; chacha20-poly1305 8.8 (x/crypto has no amd64
// assembly for ChaCha20); AES-CTR with HMAC-SHA2-256, ETM or not, 8.7–8.9
// (the MAC is a second pass over the data). SSH lets the client choose:
// the first cipher of its list that the server offers. OpenSSH's list is
// chacha20-poly1305, aes128/192/256-ctr, then aes128/256-gcm, so it never
// picks GCM from an offer that holds either; and AES-CTR must stay on
// offer for libssh2 1.10 (curl) and JSch 0.1.55, which have no GCM. So
// pigp reads the client's KEXINIT before sending its own, and offers only
// the first cipher of its own list that the client supports.

// HasAESHardware reports whether the CPU computes AES and GCM's
// multiplication in hardware (AES-NI and PCLMULQDQ, or ARMv8's AES and
// PMULL), which Go's AES-GCM uses.
func HasAESHardware() bool {
	return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ || cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
}

// CipherOffer returns the default ciphers (ssh.ciphers unset) in the
// server's order of preference: with AES hardware, AES-GCM, then
// chacha20-poly1305 (for clients without GCM, e.g. PuTTY before 0.76: an
// AEAD, and no dearer than AES-CTR with its HMAC), then AES-CTR; without
// it, chacha20-poly1305 first.
func CipherOffer(aesHardware bool) []string {
	gcm := []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}
	chacha := []string{ssh.CipherChaCha20Poly1305}
	ctr := []string{ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
	if !aesHardware {
		return slices.Concat(chacha, gcm, ctr)
	}
	return slices.Concat(gcm, chacha, ctr)
}

// kexInitWait bounds how long the server waits for the client's KEXINIT
// before sending its own with the whole offer (every client tested sends
// it at once, without waiting for the server's).
const kexInitWait = 2 * time.Second

// maxPeekPacket bounds the client's first packet the server reads ahead
// (a KEXINIT is a few hundred bytes to a few KiB).
const maxPeekPacket = 64 << 10

// peekConn lets the server read the client's identification and KEXINIT
// before x/crypto's handshake starts, so that the server's KEXINIT can
// depend on them. It sends the server's identification itself (first, as
// RFC 4253 §4.2 allows), reads ahead, then gives x/crypto every byte read
// and swallows x/crypto's identification line, already sent.
type peekConn struct {
	net.Conn
	sent   []byte // our identification line, as x/crypto writes it
	replay []byte // the client's bytes read ahead, handed to x/crypto
}

// peekClient sends ours and reads the client's identification and, within
// wait, its first packet; it returns the ciphers of the client's KEXINIT
// (client to server, server to client; nil when it did not come in time
// or is not a KEXINIT).
func peekClient(nc net.Conn, ours string, wait time.Duration, deadline time.Time) (*peekConn, [2][]string, error) {
	var algs [2][]string
	c := &peekConn{Conn: nc, sent: []byte(ours + "\r\n")}
	if _, err := nc.Write(c.sent); err != nil {
		return nil, algs, err
	}
	// The identification, after any other lines (x/crypto's bounds).
	pos := 0
	for lines := 0; ; {
		i := bytes.IndexByte(c.replay[pos:], '\n')
		if i < 0 {
			if len(c.replay)-pos > 255 {
				return nil, algs, errors.New("ssh: identification line too long")
			}
			if err := c.fill(); err != nil {
				return nil, algs, err
			}
			continue
		}
		line := c.replay[pos : pos+i+1]
		pos += i + 1
		if bytes.HasPrefix(line, []byte("SSH-")) {
			break
		}
		if lines++; lines >= 1024 {
			return nil, algs, errors.New("ssh: no identification line")
		}
	}
	// The first binary packet, unencrypted: uint32 length, byte padding,
	// payload.
	if d := time.Now().Add(wait); d.Before(deadline) {
		nc.SetReadDeadline(d)
	}
	defer nc.SetReadDeadline(deadline)
	for len(c.replay)-pos < 4 || len(c.replay)-pos < 4+int(binary.BigEndian.Uint32(c.replay[pos:])) {
		if len(c.replay)-pos >= 4 && binary.BigEndian.Uint32(c.replay[pos:]) > maxPeekPacket {
			return c, algs, nil // not for us to judge: x/crypto refuses it
		}
		if err := c.fill(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return c, algs, nil
			}
			return nil, algs, err
		}
	}
	algs = kexInitCiphers(c.replay[pos:])
	return c, algs, nil
}

// fill reads more of the client's bytes.
func (c *peekConn) fill() error {
	var buf [4096]byte
	n, err := c.Conn.Read(buf[:])
	c.replay = append(c.replay, buf[:n]...)
	if n > 0 {
		return nil
	}
	return err
}

// kexInitCiphers returns the cipher lists (client to server, server to
// client) of a KEXINIT packet, nil when pkt is not one.
func kexInitCiphers(pkt []byte) [2][]string {
	var out [2][]string
	if len(pkt) < 6 {
		return out
	}
	n, pad := int(binary.BigEndian.Uint32(pkt)), int(pkt[4])
	if n < pad+1 || len(pkt) < 4+n {
		return out
	}
	p := pkt[5 : 4+n-pad]
	const msgKexInit = 20
	if len(p) < 17 || p[0] != msgKexInit {
		return out
	}
	p = p[17:]            // type and cookie
	var lists [4][]string // kex, host key, ciphers c2s, ciphers s2c
	for i := range lists {
		if len(p) < 4 {
			return out
		}
		l := binary.BigEndian.Uint32(p)
		if uint64(len(p)-4) < uint64(l) {
			return out
		}
		lists[i] = strings.Split(string(p[4:4+l]), ",")
		p = p[4+l:]
	}
	return [2][]string{lists[2], lists[3]}
}

// chooseCipher returns the first of ours that the client has in both
// directions; nil when there is none (the whole offer then goes, and the
// handshake fails as it should).
func chooseCipher(ours []string, client [2][]string) []string {
	for _, c := range ours {
		if slices.Contains(client[0], c) && slices.Contains(client[1], c) {
			return []string{c}
		}
	}
	return nil
}

// Write swallows x/crypto's identification line, already sent.
func (c *peekConn) Write(p []byte) (int, error) {
	if c.sent != nil {
		if !bytes.Equal(p, c.sent) {
			return 0, errors.New("ssh: unexpected identification write")
		}
		c.sent = nil
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Read gives back the bytes read ahead, then reads from the connection.
func (c *peekConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		if len(c.replay) == 0 {
			c.replay = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}
