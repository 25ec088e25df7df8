package web

import (
	"math"
	"sync"
	"time"
)

// Throttling of portal logins. Each identifier and each client address
// has a failure count; past a few free failures every new failure blocks
// further attempts for a delay that doubles, up to a ceiling. A success
// clears the identifier's count (not the address's). Counts are forgotten
// after a quiet period. The same rule applies to unknown identifiers, so
// the throttle reveals nothing about which logins exist.
const (
	loginFreeFailures = 3
	ipFreeFailures    = 10
	throttleBase      = 2 * time.Second
	throttleMaxDelay  = 15 * time.Minute
	throttleForget    = time.Hour
	throttleMaxKeys   = 100_000
)

type throttleEntry struct {
	failures     int
	last         time.Time
	blockedUntil time.Time
}

type throttle struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*throttleEntry
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, m: map[string]*throttleEntry{}}
}

func ipKey(ip string) string       { return "ip:" + ip }
func loginKey(login string) string { return "login:" + login }

// wait returns how long the caller must still wait before trying again
// with this login from this address (0: allowed).
func (t *throttle) wait(ip, login string) time.Duration {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var d time.Duration
	for _, k := range []string{ipKey(ip), loginKey(login)} {
		if e, ok := t.m[k]; ok && e.blockedUntil.After(now) {
			d = max(d, e.blockedUntil.Sub(now))
		}
	}
	return d
}

// failure records a failed attempt.
func (t *throttle) failure(ip, login string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= throttleMaxKeys {
		for k, e := range t.m {
			if now.Sub(e.last) > throttleForget && !e.blockedUntil.After(now) {
				delete(t.m, k)
			}
		}
	}
	t.bump(ipKey(ip), ipFreeFailures, now)
	t.bump(loginKey(login), loginFreeFailures, now)
}

func (t *throttle) bump(key string, free int, now time.Time) {
	e, ok := t.m[key]
	if !ok || now.Sub(e.last) > throttleForget {
		e = &throttleEntry{}
		t.m[key] = e
	}
	e.failures++
	e.last = now
	if over := e.failures - free; over > 0 {
		d := throttleBase * time.Duration(math.Pow(2, float64(min(over-1, 20))))
		e.blockedUntil = now.Add(min(d, throttleMaxDelay))
	}
}

// success clears the login's failures after a good password.
func (t *throttle) success(login string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, loginKey(login))
}
