package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

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
//
// It copies as little as it can: of an incoming packet it reads only the
// length and the first bytes (enough to tell a limits request), and lets
// pkg/sftp read the rest straight from the channel into its own buffer;
// of a reply whose data comes in a second write, only the first SSH
// packet's worth is gathered with the header. Nothing is allocated per
// packet.
type sftpConn struct {
	ch io.ReadWriteCloser

	rmu    sync.Mutex
	hbuf   [4 + limitsRequestLen]byte // length and first bytes of a packet
	head   []byte                     // the part of hbuf not yet given to pkg/sftp
	remain int                        // bytes of the packet still in the channel

	wmu     sync.Mutex
	pending []byte // outgoing bytes not yet forming a whole packet
	version bool   // the VERSION reply went out

	// inFlight holds a token per request handed to pkg/sftp and not yet
	// answered: at most maxInFlight, so that the pages pkg/sftp holds
	// per request (256 KiB each) stay few.
	inFlight chan struct{}
	wait     *time.Timer

	// budget bounds the requests in flight of all sessions (nil: none).
	// A session's first request in flight needs no place in it; each
	// further one holds one of budget's places.
	budget   *RequestBudget
	bmu      sync.Mutex
	active   int           // requests of this session counted in budget
	places   int           // budget places they hold
	released chan struct{} // a request of this session was answered
	closed   bool

	// gate is the connection's read gate (nil: none), told what the
	// session takes from the channel and when it waits for its replies.
	gate *readGate
}

// maxInFlight is the number of requests pkg/sftp may hold at once for one
// session: its worker count. More would only wait in its queues, each
// holding a 256 KiB page; the client's further requests wait in the SSH
// channel, whose window then holds the client back. A request pkg/sftp
// never answers (none is known) costs inFlightWait, not a stall.
const (
	maxInFlight  = 8
	inFlightWait = time.Second
)

// MaxRequestsInFlight is the most requests of one session pkg/sftp holds
// at once, and MaxWriteLength the longest write a client is told to send
// (limits@openssh.com): an upload never has more than
// (MaxRequestsInFlight-1) × MaxWriteLength bytes ahead of the first one
// still missing.
const (
	MaxRequestsInFlight = maxInFlight
	MaxWriteLength      = limitWrite
)

// limitsRequestLen is the length of a limits@openssh.com request, without
// its length prefix: type, id, the name as an SSH string.
const limitsRequestLen = 1 + 4 + 4 + len(limitsExtension)

// coalesce is how much of a reply's data is gathered with its header: one
// SSH packet of OpenSSH's (32 KiB); the rest goes to the channel as it is.
const coalesce = 32 << 10

// NewRequestServer returns pkg/sftp's request server for handlers over
// ch, as every SFTP session is served: behind the packet shim (limits,
// whole-packet writes, requests in flight bounded per session and, with a
// budget, across sessions), from the start directory "/", with reads of
// at most 255 KiB, its pages from the process-wide pool of the patched
// pkg/sftp (third_party/sftp). Tests serve vfs handlers over a pipe with
// it (internal/sftptest). budget may be nil.
func NewRequestServer(ch io.ReadWriteCloser, handlers sftp.Handlers, budget *RequestBudget) *sftp.RequestServer {
	return newRequestServer(newSFTPConn(ch, budget), handlers)
}

func newRequestServer(c *sftpConn, handlers sftp.Handlers) *sftp.RequestServer {
	return sftp.NewRequestServer(c, handlers,
		sftp.WithStartDirectory("/"),
		sftp.WithRSMaxTxPacket(limitRead),
		sftp.WithRSAllocator())
}

func newSFTPConn(ch io.ReadWriteCloser, budget *RequestBudget) *sftpConn {
	t := time.NewTimer(inFlightWait)
	t.Stop()
	return &sftpConn{ch: ch, inFlight: make(chan struct{}, maxInFlight), wait: t,
		budget: budget, released: make(chan struct{}, 1)}
}

// acquire takes a place for a request, waiting at most inFlightWait for
// the session's own bound and as long again for the shared one.
func (c *sftpConn) acquire() {
	select {
	case c.inFlight <- struct{}{}:
	default:
		if c.gate != nil {
			c.gate.ownWaitStart()
		}
		c.wait.Reset(inFlightWait)
		select {
		case c.inFlight <- struct{}{}:
		case <-c.wait.C:
		}
		c.wait.Stop()
		if c.gate != nil {
			c.gate.ownWaitEnd()
		}
	}
	if c.budget != nil {
		c.acquireShared()
	}
}

// acquireShared counts the request in the budget: free when it is the
// session's only one in flight, otherwise with a place of the budget,
// waited for until one is free or the session's other requests are
// answered.
func (c *sftpConn) acquireShared() {
	c.budget.begin()
	if c.takeOwn() {
		return
	}
	select {
	case c.budget.places <- struct{}{}:
		c.holdPlace()
		return
	default:
	}
	c.wait.Reset(inFlightWait)
	defer c.wait.Stop()
	for {
		select {
		case c.budget.places <- struct{}{}:
			c.holdPlace()
			return
		case <-c.released:
			if c.takeOwn() {
				return
			}
		case <-c.wait.C:
			// A request never answered would stall the session: go on
			// without a place, as for the session's own bound.
			c.bmu.Lock()
			c.active++
			c.bmu.Unlock()
			return
		}
	}
}

// takeOwn counts the request when the session has none in flight.
func (c *sftpConn) takeOwn() bool {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if c.active == 0 || c.closed {
		c.active++
		return true
	}
	return false
}

func (c *sftpConn) holdPlace() {
	c.bmu.Lock()
	c.active++
	c.places++
	c.bmu.Unlock()
}

// release gives back the place of an answered request.
func (c *sftpConn) release() {
	select {
	case <-c.inFlight:
	default:
	}
	if c.budget == nil {
		return
	}
	c.bmu.Lock()
	if c.active == 0 {
		c.bmu.Unlock()
		return
	}
	c.active--
	if c.places > max(c.active-1, 0) {
		c.places--
		<-c.budget.places
	}
	c.bmu.Unlock()
	c.budget.end()
	select {
	case c.released <- struct{}{}:
	default:
	}
}

// releaseAll gives back what the session still holds in the budget
// (requests never answered when the session ends).
func (c *sftpConn) releaseAll() {
	if c.budget == nil {
		return
	}
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	for ; c.places > 0; c.places-- {
		<-c.budget.places
	}
	for ; c.active > 0; c.active-- {
		c.budget.end()
	}
}

// Read gives pkg/sftp the client's packets, minus the limits requests.
func (c *sftpConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if len(c.head) > 0 {
			n := copy(p, c.head)
			c.head = c.head[n:]
			return n, nil
		}
		if c.remain > 0 {
			n, err := c.read(p[:min(len(p), c.remain)])
			c.remain -= n
			if err == io.EOF && c.remain > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		c.acquire()
		if err := c.nextPacket(); err != nil {
			c.release()
			return 0, err
		}
	}
}

// nextPacket reads the length and the first bytes of the next packet,
// and answers it when it is a limits request.
func (c *sftpConn) nextPacket() error {
	if _, err := c.readFull(c.hbuf[:4]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(c.hbuf[:4])
	if n == 0 || n > maxPacket {
		return fmt.Errorf("sftp packet of %d bytes refused", n)
	}
	k := min(int(n), limitsRequestLen)
	if _, err := c.readFull(c.hbuf[4 : 4+k]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if id, ok := isLimitsRequest(c.hbuf[:4+k]); ok && int(n) == k {
		c.release() // answered here, not by pkg/sftp
		var reply [4 + 1 + 4 + 32]byte
		return c.writeOwnPacket(limitsReply(reply[:0], id))
	}
	c.head, c.remain = c.hbuf[:4+k], int(n)-k
	return nil
}

// read reads from the channel, telling the gate what was taken.
func (c *sftpConn) read(p []byte) (int, error) {
	if c.gate == nil {
		return c.ch.Read(p)
	}
	c.gate.readStart()
	n, err := c.ch.Read(p)
	c.gate.readEnd(n, len(p))
	return n, err
}

// readFull is io.ReadFull through read.
func (c *sftpConn) readFull(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := c.read(p[n:])
		n += k
		if err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
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

// limitsReply appends the reply to a limits request to b.
func limitsReply(b []byte, id uint32) []byte {
	b = append(b, 0, 0, 0, 0, fxpExtendedReply)
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
		err := c.sendLocked(p) // a whole packet in one write
		c.release()
		return len(p), err
	}
	if c.version && len(c.pending) >= 4 && len(c.pending) < coalesce && int(binary.BigEndian.Uint32(c.pending))+4 == len(c.pending)+len(p) &&
		len(c.pending)+len(p) > coalesce {
		// A reply's data after its header: the header goes with the
		// data's first bytes, the rest without a copy.
		k := coalesce - len(c.pending)
		c.pending = append(c.pending, p[:k]...)
		err := c.sendLocked(c.pending)
		if err == nil {
			err = c.sendLocked(p[k:])
		}
		c.pending = c.pending[:0]
		c.release()
		if err != nil {
			return 0, err
		}
		return len(p), nil
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
		err := c.sendLocked(pkt)
		c.release()
		if err != nil {
			return 0, err
		}
		c.pending = append(c.pending[:0], c.pending[n:]...)
	}
	return len(p), nil
}

// writeOwnPacket sends a packet of our own between pkg/sftp's packets.
func (c *sftpConn) writeOwnPacket(pkt []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.pending) > 0 {
		return errors.New("sftp: reply interleaved with a partial packet")
	}
	return c.sendLocked(pkt)
}

func (c *sftpConn) sendLocked(pkt []byte) error {
	if c.gate != nil {
		c.gate.writeStart()
		defer c.gate.writeEnd()
	}
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

// Close gives back the session's places in the budget and closes the
// channel.
func (c *sftpConn) Close() error {
	c.releaseAll()
	return c.ch.Close()
}
