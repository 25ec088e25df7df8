package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pkg/sftp"
)

// SFTP packet types handled by sftpConn.
const (
	fxpVersion       = 2
	fxpExtended      = 200
	fxpExtendedReply = 201
)

// Limits advertised with limits@openssh.com. The write length lets OpenSSH
// clients send 255 KiB writes instead of 32 KiB ones (fewer packets, fewer
// context switches); a packet stays under pkg/sftp's 256 KiB maximum.
const (
	limitMaxPacket = 256 * 1024
	limitRead      = 255 * 1024
	limitWrite     = 255 * 1024
	maxPacket      = 256*1024 + 1024 // largest packet accepted from a client
)

const limitsExtension = "limits@openssh.com"

// sftpConn sits between the SSH channel and pkg/sftp's request server. It
// answers limits@openssh.com itself (pkg/sftp has no hook for it) and
// advertises it in the VERSION reply, and it writes every reply packet in
// one call to the channel (pkg/sftp writes a reply's header and its data
// separately, which costs a small SSH packet and a system call per reply).
type sftpConn struct {
	r  *bufio.Reader
	ch io.ReadWriteCloser

	rmu  sync.Mutex
	rbuf []byte // the rest of the current incoming packet

	wmu     sync.Mutex
	pending []byte // outgoing bytes not yet forming a whole packet
	version bool   // the VERSION reply went out
}

// NewRequestServer returns pkg/sftp's request server for handlers over
// ch, as every SFTP session is served: behind the packet shim (limits,
// whole-packet writes), from the start directory "/", with reads of at
// most 255 KiB. Tests serve vfs handlers over a pipe with it.
func NewRequestServer(ch io.ReadWriteCloser, handlers sftp.Handlers) *sftp.RequestServer {
	return sftp.NewRequestServer(newSFTPConn(ch), handlers,
		sftp.WithStartDirectory("/"),
		sftp.WithRSMaxTxPacket(limitRead),
		sftp.WithRSAllocator())
}

func newSFTPConn(ch io.ReadWriteCloser) *sftpConn {
	return &sftpConn{r: bufio.NewReaderSize(ch, 64*1024), ch: ch}
}

// Read gives pkg/sftp the client's packets, minus the limits requests.
func (c *sftpConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rbuf) == 0 {
		pkt, err := c.readPacket()
		if err != nil {
			return 0, err
		}
		if id, ok := isLimitsRequest(pkt); ok {
			if err := c.writePacket(limitsReply(id)); err != nil {
				return 0, err
			}
			continue
		}
		c.rbuf = pkt
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

// readPacket reads one whole packet, length prefix included.
func (c *sftpConn) readPacket() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxPacket {
		return nil, fmt.Errorf("sftp packet of %d bytes refused", n)
	}
	// Every packet, small or large, is copied into a slice of its own,
	// which Read then hands to pkg/sftp.
	pkt := make([]byte, 4+n)
	copy(pkt, hdr[:])
	if _, err := io.ReadFull(c.r, pkt[4:]); err != nil {
		return nil, err
	}
	return pkt, nil
}

// isLimitsRequest reports whether pkt is SSH_FXP_EXTENDED limits@openssh.com.
func isLimitsRequest(pkt []byte) (uint32, bool) {
	if len(pkt) < 13 || pkt[4] != fxpExtended {
		return 0, false
	}
	id := binary.BigEndian.Uint32(pkt[5:9])
	l := binary.BigEndian.Uint32(pkt[9:13])
	if int(l) != len(limitsExtension) || len(pkt) < 13+int(l) || string(pkt[13:13+l]) != limitsExtension {
		return 0, false
	}
	return id, true
}

func limitsReply(id uint32) []byte {
	b := make([]byte, 4, 4+1+4+32)
	b = append(b, fxpExtendedReply)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint64(b, limitMaxPacket)
	b = binary.BigEndian.AppendUint64(b, limitRead)
	b = binary.BigEndian.AppendUint64(b, limitWrite)
	b = binary.BigEndian.AppendUint64(b, 0) // open handles: no limit
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// Write collects pkg/sftp's writes and sends each whole packet at once.
func (c *sftpConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.pending) == 0 && len(p) >= 4 && int(binary.BigEndian.Uint32(p))+4 == len(p) && c.version {
		return len(p), c.sendLocked(p) // a whole packet in one write
	}
	c.pending = append(c.pending, p...)
	for len(c.pending) >= 4 {
		n := int(binary.BigEndian.Uint32(c.pending)) + 4
		if len(c.pending) < n {
			break
		}
		pkt := c.pending[:n]
		if !c.version && len(pkt) > 4 && pkt[4] == fxpVersion {
			pkt = withLimitsExtension(pkt)
			c.version = true
		}
		if err := c.sendLocked(pkt); err != nil {
			return 0, err
		}
		c.pending = append(c.pending[:0], c.pending[n:]...)
	}
	return len(p), nil
}

// writePacket sends a packet of our own between pkg/sftp's packets.
func (c *sftpConn) writePacket(pkt []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.pending) > 0 {
		return errors.New("sftp: reply interleaved with a partial packet")
	}
	return c.sendLocked(pkt)
}

func (c *sftpConn) sendLocked(pkt []byte) error {
	_, err := c.ch.Write(pkt)
	return err
}

// withLimitsExtension appends the limits@openssh.com extension to VERSION.
func withLimitsExtension(pkt []byte) []byte {
	out := append([]byte(nil), pkt...)
	for _, s := range []string{limitsExtension, "1"} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(s)))
		out = append(out, s...)
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// Close closes the channel.
func (c *sftpConn) Close() error { return c.ch.Close() }
