package server

import (
	"net"
	"testing"
	"time"
)

// endlessConn is a socket that always has data: every Read fills p.
type endlessConn struct{ net.Conn }

func (endlessConn) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// gateLimit is the tests' gate limit; every socket read is gateChunk.
const (
	gateLimit = 1 << 10
	gateChunk = 4 << 10
)

// testGate returns a gate over an endless socket whose reads are held
// for a minute at most, so that a read seen still held was held by the
// gate's rule, never let through by holdMax.
func testGate() *readGate {
	g := newReadGate(endlessConn{}, gateLimit)
	g.maxHold = time.Minute
	return g
}

// gateRead runs one Read of gateChunk bytes in the background and
// reports when it returns.
func gateRead(t *testing.T, g *readGate) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if n, err := g.Read(make([]byte, gateChunk)); n != gateChunk || err != nil {
			t.Errorf("gate read: %d, %v", n, err)
		}
	}()
	return done
}

// heldGate returns a gate with a session attached and busy (not in a
// channel read), more than its limit ahead, and a socket read it holds.
func heldGate(t *testing.T) (*readGate, <-chan struct{}) {
	t.Helper()
	g := testGate()
	g.attach()
	mustWait(t, gateRead(t, g), "the first read") // gateChunk > gateLimit ahead
	next := gateRead(t, g)
	mustBlock(t, next, "a read with the busy session more than the limit ahead")
	return g, next
}

// TestGateNoSession: without an SFTP session on the connection (during
// the handshake, or for other channels), nothing is held.
func TestGateNoSession(t *testing.T) {
	g := testGate()
	for i := range 20 {
		mustWait(t, gateRead(t, g), "a read without a session")
		if i == 10 {
			g.attach()
			g.detach()
		}
	}
}

// TestGateHoldsUntilConsumed: with the session busy and more than the
// limit read ahead, reading waits until the session takes enough.
func TestGateHoldsUntilConsumed(t *testing.T) {
	g, next := heldGate(t)
	g.readStart()
	g.readEnd(gateLimit, gateLimit) // not enough: still 3 KiB ahead
	mustBlock(t, next, "a read with 3 KiB still ahead")
	g.readStart()
	g.readEnd(gateChunk-gateLimit, gateChunk-gateLimit) // all taken
	mustWait(t, next, "a read once the session took what was ahead")
	mustBlock(t, gateRead(t, g), "a read with the busy session again more than the limit ahead")
}

// TestGateOwnWait: a session that waits for its own replies (which may
// need the client's window adjustments or a key exchange, read from the
// socket) opens the gate.
func TestGateOwnWait(t *testing.T) {
	g, next := heldGate(t)
	g.ownWaitStart()
	mustWait(t, next, "a read while the session waits for its replies")
	mustWait(t, gateRead(t, g), "the next read while it still waits")
	g.ownWaitEnd()
	mustBlock(t, gateRead(t, g), "a read once the session is busy again")
}

// TestGateSessionWaitsForData: a session that sits in its channel's Read
// waits for data (or for a window adjustment of its own to go out during
// a key exchange): the gate opens, whatever it counts ahead.
func TestGateSessionWaitsForData(t *testing.T) {
	g, next := heldGate(t)
	g.readStart() // and no readEnd: the channel has nothing
	mustWait(t, next, "a read while the session waits in its channel")
	mustWait(t, gateRead(t, g), "the next read while it still waits")
	// What arrives is read short (the session asked for more): nothing
	// is ahead any more, and once the session is busy again, its gate
	// holds again.
	g.readEnd(gateChunk, gateChunk+1)
	mustWait(t, gateRead(t, g), "a read under the limit")
	mustBlock(t, gateRead(t, g), "a read past the limit, the session busy")
}

// TestGateReadOverhead: each channel read counts for its bytes and the
// framing of a packet, so that small requests (a download's) do not
// leave their framing counted ahead.
func TestGateReadOverhead(t *testing.T) {
	g := testGate()
	g.attach()
	g.mu.Lock()
	g.ahead = 10 * (30 + readOverhead) // ten requests of 30 bytes in their packets
	g.mu.Unlock()
	for range 10 {
		g.readStart()
		g.readEnd(30, 30)
	}
	g.mu.Lock()
	ahead := g.ahead
	g.mu.Unlock()
	if ahead != 0 {
		t.Fatalf("ahead %d after the session took ten small requests, want 0", ahead)
	}
}

// TestGateShortRead: a channel read that gave fewer bytes than asked
// emptied the channel's buffer: nothing is ahead any more.
func TestGateShortRead(t *testing.T) {
	g, next := heldGate(t)
	g.readStart()
	g.readEnd(10, 100)
	mustWait(t, next, "a read after a short channel read")
	g.mu.Lock()
	ahead := g.ahead
	g.mu.Unlock()
	if ahead != gateChunk {
		t.Fatalf("ahead %d after a short read and one socket read, want %d", ahead, gateChunk)
	}
}

// TestGateDetach: a session that ends while the gate holds opens it.
func TestGateDetach(t *testing.T) {
	g, next := heldGate(t)
	g.detach()
	mustWait(t, next, "a read once the session ended")
}

// TestGateHoldMax: a held read goes on after holdMax without any
// progress of the session.
func TestGateHoldMax(t *testing.T) {
	g := newReadGate(endlessConn{}, gateLimit) // holdMax
	g.attach()
	mustWait(t, gateRead(t, g), "the first read")
	mustWait(t, gateRead(t, g), "a held read, after holdMax")
	mustWait(t, gateRead(t, g), "the next held read, after holdMax")
}

// TestGateBlockedWrite: a reply that does not go out waits for the
// client's window adjustment or key exchange messages, from the socket:
// the gate opens. Writes that go out leave it shut.
func TestGateBlockedWrite(t *testing.T) {
	g, next := heldGate(t)
	g.writeStart()
	g.writeEnd()
	mustBlock(t, next, "a read after a reply went out")
	g.writeStart() // and no writeEnd: the reply waits
	mustWait(t, next, "a read while a reply waits to go out")
	g.writeEnd()
	mustBlock(t, gateRead(t, g), "a read once the reply went out")
}

// TestGateNoCredit: a session taking bytes read before a reset (another
// channel's, a packet in the middle of being read) gets no credit beyond
// the limit for them.
func TestGateNoCredit(t *testing.T) {
	g, next := heldGate(t)
	g.readStart()
	g.readEnd(10, 100) // reset
	mustWait(t, next, "a read after a short channel read")
	g.readStart()
	g.readEnd(1<<20, 1<<20) // taken: far more than counted since the reset
	mustWait(t, gateRead(t, g), "a read with nothing ahead")
	mustBlock(t, gateRead(t, g), "a read past the limit after a big read")
}
