package server

import (
	"sync"
	"time"
)

// RequestBudget bounds the SFTP requests in flight of all sessions
// together, and so the memory their data takes: each request holds a
// 256 KiB page of pkg/sftp while it is served. A session's first request
// in flight is always let through (no session waits for another's); each
// further one, up to MaxRequestsInFlight per session, takes one of the
// budget's places, and waits for one when all are taken. A lone session
// still has its whole pipeline; fifty uploading at once share the places.
//
// When no request has been in flight for idleAfter, Idle is called: the
// server gives the memory of a burst of transfers back to the system
// (nil: not called).
type RequestBudget struct {
	places chan struct{}
	idle   func()

	mu       sync.Mutex
	inFlight int
	timer    *time.Timer // calls onIdle; stopped while requests are in flight
}

// idleAfter is how long no request must be in flight before Idle.
const idleAfter = time.Second

// NewRequestBudget returns a budget of places requests (beyond each
// session's first), calling idle (may be nil) once no request has been in
// flight for a second. places < 1 gives one place.
func NewRequestBudget(places int, idle func()) *RequestBudget {
	b := &RequestBudget{places: make(chan struct{}, max(places, 1)), idle: idle}
	if idle != nil {
		b.timer = time.AfterFunc(idleAfter, b.onIdle)
		b.timer.Stop()
	}
	return b
}

// begin counts a request in flight.
func (b *RequestBudget) begin() {
	b.mu.Lock()
	b.inFlight++
	if b.inFlight == 1 && b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
}

// end counts a request answered, and starts the idle timer after the last.
func (b *RequestBudget) end() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight > 0 {
		b.inFlight--
	}
	if b.inFlight == 0 && b.timer != nil {
		b.timer.Reset(idleAfter)
	}
}

// onIdle calls idle unless a request started since the timer was set
// (one that started and ended since has set it again: at worst idle comes
// early once, which costs a collection, not a wrong result).
func (b *RequestBudget) onIdle() {
	b.mu.Lock()
	idle := b.inFlight == 0
	b.mu.Unlock()
	if idle {
		b.idle()
	}
}

// InFlight returns the requests in flight and the budget's places taken.
func (b *RequestBudget) InFlight() (requests, places int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight, len(b.places)
}
