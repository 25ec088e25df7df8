package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/pigp/pigp"
)

// session is one logged-in browser.
type session struct {
	id       string
	caller   *pigp.Caller
	created  time.Time
	lastSeen time.Time
	// mustChange keeps a temporary password's owner on the change page.
	mustChange bool
	// flash is a message shown once on the next page.
	flash string
}

// sessionStore keeps sessions in memory: a restart logs everyone out,
// which the short idle timeout makes acceptable.
type sessionStore struct {
	now      func() time.Time
	idle     time.Duration
	max      time.Duration
	perAcct  int // sessions per account (0: no bound)
	mu       sync.Mutex
	sessions map[string]*session
}

func newSessionStore(now func() time.Time, idle, max time.Duration, perAccount int) *sessionStore {
	return &sessionStore{now: now, idle: idle, max: max, perAcct: perAccount, sessions: map[string]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for caller and sweeps the expired ones. When
// the account already has all its sessions, the least recently used one
// ends and is returned.
func (st *sessionStore) create(caller *pigp.Caller) (s, ended *session) {
	now := st.now()
	s = &session{id: randomToken(), caller: caller, created: now, lastSeen: now}
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for id, old := range st.sessions {
		switch {
		case st.expired(old, now):
			delete(st.sessions, id)
		case old.caller.AccountID == caller.AccountID:
			n++
			if ended == nil || old.lastSeen.Before(ended.lastSeen) {
				ended = old
			}
		}
	}
	if st.perAcct > 0 && n >= st.perAcct {
		delete(st.sessions, ended.id)
	} else {
		ended = nil
	}
	st.sessions[s.id] = s
	return s, ended
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) >= st.idle || now.Sub(s.created) >= st.max
}

// get returns the live session id and marks it used; expired reports
// whether id named a session that has just expired.
func (st *sessionStore) get(id string) (s *session, expired bool) {
	if id == "" {
		return nil, false
	}
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	if !ok {
		return nil, false
	}
	if st.expired(s, now) {
		delete(st.sessions, id)
		return nil, true
	}
	s.lastSeen = now
	return s, false
}

// update runs fn on the session under the store's lock.
func (st *sessionStore) update(s *session, fn func(s *session)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	fn(s)
}

func (st *sessionStore) delete(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.sessions, id)
}

// count returns the number of sessions held (tests, metrics).
func (st *sessionStore) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.sessions)
}

// Cookie names. Under TLS the __Host- prefix makes the browser refuse any
// cookie not set by this origin over HTTPS with Path=/.
func (s *Server) sessionCookieName() string {
	if s.tls {
		return "__Host-pigp-session"
	}
	return "pigp-session"
}

func (s *Server) preCookieName() string {
	if s.tls {
		return "__Host-pigp-pre"
	}
	return "pigp-pre"
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.tls, SameSite: http.SameSiteStrictMode,
	})
}

// csrfToken returns the token forms must carry: an HMAC of the session id,
// or, before login, of a random "pre-session" cookie (so the login form is
// protected too without keeping anonymous state on the server).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request, sess *session) string {
	if sess != nil {
		return s.mac("session:" + sess.id)
	}
	if c, err := r.Cookie(s.preCookieName()); err == nil && len(c.Value) >= 32 {
		return s.mac("pre:" + c.Value)
	}
	v := randomToken()
	s.setCookie(w, s.preCookieName(), v, 0)
	// The cookie is also visible to handlers of this same request.
	r.AddCookie(&http.Cookie{Name: s.preCookieName(), Value: v})
	return s.mac("pre:" + v)
}

// checkCSRF verifies the token of a state-changing request, from the
// X-CSRF-Token header (scripts) or the csrf form field (already parsed by
// the caller when it is a multipart body).
func (s *Server) checkCSRF(r *http.Request, sess *session, token string) bool {
	if token == "" {
		token = r.Header.Get("X-CSRF-Token")
	}
	if token == "" {
		return false
	}
	var want string
	if sess != nil {
		want = s.mac("session:" + sess.id)
	} else if c, err := r.Cookie(s.preCookieName()); err == nil && len(c.Value) >= 32 {
		want = s.mac("pre:" + c.Value)
	} else {
		return false
	}
	return hmac.Equal([]byte(token), []byte(want))
}

func (s *Server) mac(msg string) string {
	h := hmac.New(sha256.New, s.csrfKey)
	h.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
