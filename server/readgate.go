package server

import (
	"net"
	"sync"
	"time"
)

// readGate keeps an SSH connection from reading far ahead of its SFTP
// session. x/crypto/ssh reads and decrypts whatever the client sends
// within the channel's window (2 MiB, fixed) and keeps it in the heap
// until the session reads it: with fifty sessions uploading faster than
// the CPUs store, that was about 1 MiB of decrypted data per session
// waiting in the heap (and twice that with the collector's headroom). The
// gate holds back reading the socket while more than limit bytes were
// read and not yet taken by the session; the rest waits in the kernel's
// socket buffer, as it does for OpenSSH, and TCP holds the client back.
//
// It never holds a session back from what it waits for: reading goes on
// while the session waits for data (it is blocked in the channel's Read)
// or for its own replies to go out (which may need the client's window
// adjustments or a key exchange, both read from the socket: it waits for
// its requests in flight, or is blocked in the channel's Write), and
// after holdMax in any case. It only holds while the session is busy or waits
// for a place of the shared budget, which other sessions give back.
type readGate struct {
	net.Conn
	limit int64
	// maxHold is how long one Read is held at most: holdMax (tests set
	// their own, so that "still held" never races with it).
	maxHold time.Duration

	mu        sync.Mutex
	ahead     int64     // bytes read from the socket and not known taken
	consumers int       // SFTP sessions on the connection
	ownWait   int       // sessions waiting for their own replies
	reading   int       // sessions inside their channel's Read
	readAt    time.Time // when the last channel read began
	writing   int       // sessions inside their channel's Write
	writeAt   time.Time // when the last channel write began or ended
	progress  chan struct{}
	timer     *time.Timer // of the reading goroutine (x/crypto has one)
}

// Gate timings: how long a read waits at most, and how long a session
// must sit in one channel read to count as waiting for data.
const (
	holdMax     = time.Second
	blockedRead = 2 * time.Millisecond
	// stuckWrite is how long no reply of the connection may go out
	// before the gate opens, for as long as it stays stuck (see hold):
	// a key exchange needs all the packets the client sent before its
	// kex messages read. Much longer than blockedRead: with fifty
	// sessions on two CPUs, a reply's write is often descheduled for
	// some milliseconds, and opening then would let every connection
	// read its whole window ahead again.
	stuckWrite = 100 * time.Millisecond
)

// readOverhead is what each channel read of a session is taken to cover,
// besides its bytes, of what the socket brought that no channel read
// takes: the SSH framing, padding and MAC of a packet (about 50 bytes)
// and the client's window adjustments. Without it, a download, whose
// small requests each cost their size again in framing, would count
// ever more ahead.
const readOverhead = 64

// readAhead is the gate's limit: about one 255 KiB write of
// OpenSSH's, so that the next request is decrypted while one is served.
const readAhead = 256 << 10

func newReadGate(c net.Conn, limit int64) *readGate {
	t := time.NewTimer(holdMax)
	t.Stop()
	return &readGate{Conn: c, limit: limit, maxHold: holdMax, progress: make(chan struct{}, 1), timer: t}
}

// Read reads from the socket once the session has taken enough of what
// was read before.
func (g *readGate) Read(p []byte) (int, error) {
	g.hold()
	n, err := g.Conn.Read(p)
	if n > 0 {
		g.mu.Lock()
		g.ahead += int64(n)
		g.mu.Unlock()
	}
	return n, err
}

func (g *readGate) hold() {
	start := time.Now()
	for {
		g.mu.Lock()
		if g.consumers == 0 || g.ownWait > 0 || g.ahead <= g.limit {
			g.mu.Unlock()
			return
		}
		now := time.Now()
		// How long the session has sat in one channel read, counted from
		// this socket read on: a read descheduled under load lets one
		// socket read through every blockedRead, not all of them.
		readFor := time.Duration(-1)
		if g.reading > 0 {
			readFor = now.Sub(later(g.readAt, start))
		}
		writeFor := time.Duration(-1) // how long no reply has gone out while one waits
		if g.writing > 0 {
			writeFor = now.Sub(g.writeAt)
		}
		g.mu.Unlock()
		switch {
		case readFor >= blockedRead:
			// The session seems to wait for data in its channel: this
			// read goes through. Nothing more: under load, a session
			// is as often descheduled in the middle of a read, with
			// data waiting (taking that for an empty channel and
			// counting nothing ahead let every connection read about
			// twice its limit ahead: 100 MB live with 50 uploads
			// instead of 55). A session that truly waits gets this
			// read's data and reads it short, which counts nothing
			// ahead (readEnd).
			return
		case writeFor >= stuckWrite:
			// A reply has not gone out for stuckWrite: it waits for the
			// client's window adjustment or, during a key exchange
			// (x/crypto queues 64 packets, then holds every write), for
			// the client's key exchange messages: both come from the
			// socket, behind what the gate holds. Holding on would
			// stall the session (and those waiting for its places of
			// the budget) until holdMax, at every key exchange.
			return
		}
		wait := g.maxHold - now.Sub(start)
		if wait <= 0 {
			return
		}
		if readFor >= 0 || writeFor >= 0 {
			wait = min(wait, blockedRead)
		}
		g.timer.Reset(wait)
		select {
		case <-g.progress:
			g.timer.Stop()
		case <-g.timer.C:
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (g *readGate) signal() {
	select {
	case g.progress <- struct{}{}:
	default:
	}
}

// attach and detach count the SFTP sessions of the connection; the gate
// holds nothing without one.
func (g *readGate) attach() {
	g.mu.Lock()
	g.consumers++
	g.mu.Unlock()
}

func (g *readGate) detach() {
	g.mu.Lock()
	g.consumers--
	g.mu.Unlock()
	g.signal()
}

// readStart and readEnd surround a session's read of asked bytes from its
// channel, which gave n. A read that gave fewer bytes than asked emptied
// the channel's buffer: everything read from the socket is taken, but for
// a packet in the middle of being read.
func (g *readGate) readStart() {
	g.mu.Lock()
	g.reading++
	g.readAt = time.Now()
	g.mu.Unlock()
	// A held read must learn that the session now reads: it may wait
	// for data behind the gate (whatever the gate counts ahead), and
	// without a signal the gate would see it only after holdMax.
	g.signal()
}

func (g *readGate) readEnd(n, asked int) {
	g.mu.Lock()
	g.reading--
	if n < asked {
		g.ahead = 0
	} else {
		// Never below 0: after a reset (a short read, a session waiting
		// for data) the session may still take bytes read before it,
		// from a packet in the middle of being read, from another
		// channel of the connection, or from a buffer it was not done
		// with; a negative count would let up to a whole window (2
		// MiB) more in past the limit.
		g.ahead = max(g.ahead-int64(n)-readOverhead, 0)
	}
	g.mu.Unlock()
	g.signal()
}

// writeStart and writeEnd surround a session's write to its channel.
func (g *readGate) writeStart() {
	g.mu.Lock()
	g.writing++
	g.writeAt = time.Now()
	g.mu.Unlock()
	g.signal() // as readStart
}

func (g *readGate) writeEnd() {
	g.mu.Lock()
	g.writing--
	g.writeAt = time.Now()
	g.mu.Unlock()
}

// ownWaitStart and ownWaitEnd surround a session's wait for its own
// replies (its requests in flight at their bound).
func (g *readGate) ownWaitStart() {
	g.mu.Lock()
	g.ownWait++
	g.mu.Unlock()
	g.signal()
}

func (g *readGate) ownWaitEnd() {
	g.mu.Lock()
	g.ownWait--
	g.mu.Unlock()
}
