package server

import (
	"sync/atomic"
	"testing"
	"time"
)

// acquired runs c.acquire in the background and reports when it returns.
func acquired(c *sftpConn) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		c.acquire()
		close(done)
	}()
	return done
}

func mustWait(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10 s", what)
	}
}

func mustBlock(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
		t.Fatalf("%s: went through, want it to wait", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestRequestBudgetShared: beyond its first request in flight, a session
// needs one of the budget's places; a session with none in flight never
// waits for the others; an answered request frees its place.
func TestRequestBudgetShared(t *testing.T) {
	b := NewRequestBudget(2, nil)
	a, other := newSFTPConn(&loopChannel{}, b), newSFTPConn(&loopChannel{}, b)
	a.acquire() // own
	a.acquire() // place 1
	a.acquire() // place 2
	if req, places := b.InFlight(); req != 3 || places != 2 {
		t.Fatalf("in flight %d, places %d; want 3 and 2", req, places)
	}
	fourth := acquired(a)
	mustBlock(t, fourth, "a session's 4th request with every place taken")

	mustWait(t, acquired(other), "another session's first request")
	second := acquired(other)
	mustBlock(t, second, "another session's 2nd request with every place taken")

	a.release() // one of a's requests answered: a place is free
	select {
	case <-fourth:
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("no request went through after a place was freed")
	}
	a.release()
	mustWait(t, fourth, "a's 4th request after two of its requests were answered")
	mustWait(t, second, "other's 2nd request after two of a's requests were answered")
	if req, places := b.InFlight(); req != 4 || places != 2 {
		t.Fatalf("in flight %d, places %d; want 4 and 2", req, places)
	}
}

// TestRequestBudgetOwnRequest: a session waiting for a place goes on
// without one once its other requests are answered (its next one is then
// its only one).
func TestRequestBudgetOwnRequest(t *testing.T) {
	b := NewRequestBudget(1, nil)
	hog, a := newSFTPConn(&loopChannel{}, b), newSFTPConn(&loopChannel{}, b)
	hog.acquire()
	hog.acquire() // the only place
	a.acquire()
	next := acquired(a)
	mustBlock(t, next, "a's 2nd request with the only place taken")
	a.release()
	mustWait(t, next, "a's request once its other one was answered")
	if _, places := b.InFlight(); places != 1 {
		t.Fatalf("%d places taken, want 1 (hog's)", places)
	}
}

// TestRequestBudgetClose: a session that ends gives back the places of
// the requests it never saw answered.
func TestRequestBudgetClose(t *testing.T) {
	b := NewRequestBudget(3, nil)
	a := newSFTPConn(&loopChannel{}, b)
	for range 4 {
		a.acquire()
	}
	if req, places := b.InFlight(); req != 4 || places != 3 {
		t.Fatalf("in flight %d, places %d; want 4 and 3", req, places)
	}
	a.Close()
	a.release() // a late reply changes nothing
	if req, places := b.InFlight(); req != 0 || places != 0 {
		t.Fatalf("after Close: in flight %d, places %d; want 0 and 0", req, places)
	}
	other := newSFTPConn(&loopChannel{}, b)
	for range 4 {
		mustWait(t, acquired(other), "a request after the other session closed")
	}
}

// TestRequestBudgetIdle: Idle comes once no request is in flight, never
// while one is.
func TestRequestBudgetIdle(t *testing.T) {
	var calls atomic.Int32
	idle := make(chan struct{}, 10)
	b := NewRequestBudget(4, func() {
		calls.Add(1)
		idle <- struct{}{}
	})
	a := newSFTPConn(&loopChannel{}, b)
	a.acquire()
	time.Sleep(idleAfter + 500*time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("Idle called %d times with a request in flight", n)
	}
	a.release()
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("Idle not called 10 s after the last request was answered")
	}
	a.acquire()
	a.release()
	mustWait(t, idle, "Idle after a second burst")
}
