package exchange

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pigp/pigp"
)

// HashLimiter is the memory budget of authentication: each password check
// (argon2id) holds 19 MiB while it runs, so at most Max run at once,
// whatever the number of logins. At most Queue more wait, each at most
// Wait; past that a check is refused at once (pigp.ErrPasswordNotChecked),
// which callers answer like a wrong password.
//
// Waiters are served fairly across keys (the client's address): one from
// each waiting address in turn. When the queue is full, a newcomer takes
// the place of the newest waiter of the address holding the most places,
// if that address holds more than one place more than the newcomer's: a
// flood from a few addresses cannot keep the other addresses out.
//
// Once the checks stop for a second, Idle is called (the process returns
// the hashing memory to the system there).
type HashLimiter struct {
	max, queue int
	wait       time.Duration
	logger     *slog.Logger
	idle       func()

	mu      sync.Mutex
	running int
	waiting int
	queues  map[string][]*hashWaiter // per key, oldest first
	ring    []string                 // keys with waiters, next served first
	timer   *time.Timer              // pending Idle call
	stats   HashStats
	logged  time.Time // last refusal log line
	unseen  int       // refusals not logged since
}

// HashStats counts what the limiter did.
type HashStats struct {
	Checks  uint64 // password checks run
	Queued  uint64 // checks that waited for a place
	Refused uint64 // checks refused without running
	// MaxRunning is the most checks that ran at once.
	MaxRunning int
}

type hashWaiter struct {
	key  string
	done chan bool // true: run; false: refused
}

// idleAfter is how long the limiter stays without checks before Idle.
const idleAfter = time.Second

// NewHashLimiter returns a limiter running at most running checks at once
// with at most queue waiting, each for at most wait. idle (may be nil) is
// called once the checks stop.
func NewHashLimiter(running, queue int, wait time.Duration, idle func(), logger *slog.Logger) *HashLimiter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &HashLimiter{max: max(running, 1), queue: max(queue, 0), wait: wait, idle: idle, logger: logger,
		queues: map[string][]*hashWaiter{}}
}

// Stats returns the counters.
func (h *HashLimiter) Stats() HashStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// Do runs fn, one password check for the client key, within the limit. It
// returns pigp.ErrPasswordNotChecked without running fn when the queue is
// full, the wait is over or ctx ends. A nil limiter runs fn at once.
func (h *HashLimiter) Do(ctx context.Context, key string, fn func()) error {
	if h == nil {
		fn()
		return nil
	}
	if err := h.acquire(ctx, key); err != nil {
		return err
	}
	defer h.release()
	fn()
	return nil
}

func (h *HashLimiter) acquire(ctx context.Context, key string) error {
	h.mu.Lock()
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	if h.running < h.max && h.waiting == 0 {
		h.running++
		h.stats.MaxRunning = max(h.stats.MaxRunning, h.running)
		h.mu.Unlock()
		return nil
	}
	if h.waiting >= h.queue {
		victim := h.victimLocked(key)
		if victim == nil {
			h.refusedLocked(key, "queue full")
			h.mu.Unlock()
			return pigp.ErrPasswordNotChecked
		}
		h.removeLocked(victim)
		h.refusedLocked(victim.key, "place given to another address")
		victim.done <- false
	}
	w := &hashWaiter{key: key, done: make(chan bool, 1)}
	if len(h.queues[key]) == 0 {
		h.ring = append(h.ring, key)
	}
	h.queues[key] = append(h.queues[key], w)
	h.waiting++
	h.stats.Queued++
	h.mu.Unlock()

	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case ok := <-w.done:
		if ok {
			return nil
		}
		return pigp.ErrPasswordNotChecked
	case <-t.C:
	case <-ctx.Done():
	}
	h.mu.Lock()
	if h.removeLocked(w) {
		h.refusedLocked(key, "waited too long")
		h.mu.Unlock()
		return pigp.ErrPasswordNotChecked
	}
	h.mu.Unlock()
	if <-w.done { // served or evicted meanwhile
		return nil
	}
	return pigp.ErrPasswordNotChecked
}

// release hands the place over to the next waiter, in turn across keys.
func (h *HashLimiter) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stats.Checks++
	if len(h.ring) > 0 {
		key := h.ring[0]
		q := h.queues[key]
		w := q[0]
		h.ring = h.ring[1:]
		if len(q) == 1 {
			delete(h.queues, key)
		} else {
			h.queues[key] = q[1:]
			h.ring = append(h.ring, key) // its next waiter goes after the others
		}
		h.waiting--
		w.done <- true // the place goes to w: running is unchanged
		return
	}
	h.running--
	if h.running == 0 && h.idle != nil {
		h.timer = time.AfterFunc(idleAfter, h.onIdle)
	}
}

func (h *HashLimiter) onIdle() {
	h.mu.Lock()
	idle := h.running == 0 && h.waiting == 0 && h.timer != nil
	h.timer = nil
	h.mu.Unlock()
	if idle {
		h.idle()
	}
}

// victimLocked returns the waiter that a newcomer from key may replace: the
// newest one of the key holding the most places, if it holds at least two
// more than key.
func (h *HashLimiter) victimLocked(key string) *hashWaiter {
	var most string
	for _, k := range h.ring {
		if len(h.queues[k]) > len(h.queues[most]) {
			most = k
		}
	}
	q := h.queues[most]
	if most == key || len(q) < len(h.queues[key])+2 {
		return nil
	}
	return q[len(q)-1]
}

// removeLocked takes w out of the queue; it reports false when w was not
// waiting any more (already served or refused).
func (h *HashLimiter) removeLocked(w *hashWaiter) bool {
	q := h.queues[w.key]
	for i, x := range q {
		if x != w {
			continue
		}
		q = append(q[:i:i], q[i+1:]...)
		if len(q) == 0 {
			delete(h.queues, w.key)
			for j, k := range h.ring {
				if k == w.key {
					h.ring = append(h.ring[:j:j], h.ring[j+1:]...)
					break
				}
			}
		} else {
			h.queues[w.key] = q
		}
		h.waiting--
		return true
	}
	return false
}

// refusedLocked counts a refusal and logs it, at most one line a second
// with the number of refusals since the last line.
func (h *HashLimiter) refusedLocked(key, why string) {
	h.stats.Refused++
	h.unseen++
	now := time.Now()
	if now.Sub(h.logged) < time.Second {
		return
	}
	h.logger.Warn("password check refused: too many at once", "ip", key, "reason", why, "refused", h.unseen,
		"running", h.running, "waiting", h.waiting, "max", h.max, "queue", h.queue)
	h.logged, h.unseen = now, 0
}
