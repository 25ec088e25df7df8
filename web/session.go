package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/pigp/pigp"
)

// SessionStore keeps the portal's sessions where every node finds them
// (store.DB): a session survives a restart and a balancer needs no sticky
// sessions. The browser's token is never stored, only its hash.
type SessionStore interface {
	CreateSession(ctx context.Context, s *pigp.PortalSession) error
	// FindSession returns ENOTFOUND for an unknown, revoked or swept session.
	FindSession(ctx context.Context, tokenHash string) (*pigp.PortalSession, error)
	// TouchSession records a request; ENOTFOUND when the session is gone.
	TouchSession(ctx context.Context, tokenHash string, lastSeen, expiresAt time.Time) error
	// UpdateSession replaces the caller, must-change flag and flash message.
	UpdateSession(ctx context.Context, s *pigp.PortalSession) error
	// TakeFlash clears the flash message if it is still flash.
	TakeFlash(ctx context.Context, tokenHash, flash string) error
	DeleteSession(ctx context.Context, tokenHash string) error
	// DeleteAccountSessions ends every session of the account.
	DeleteAccountSessions(ctx context.Context, accountID int64) (int, error)
	// EvictSessions ends the account's sessions beyond its keep most
	// recently used live ones (and its expired ones), returning the live
	// ones it ended.
	EvictSessions(ctx context.Context, accountID int64, keep int, now time.Time) ([]*pigp.PortalSession, error)
}

// session is one logged-in browser, as read from the store for this
// request.
type session struct {
	token  string // the cookie's value: known only while serving its request
	hash   string
	caller *pigp.Caller
	// csrfSecret keys the CSRF tokens of the session's forms.
	csrfSecret string
	created    time.Time
	lastSeen   time.Time
	// mustChange keeps a temporary password's owner on the change page.
	mustChange bool
	// flash is a message shown once on the next page.
	flash string
}

// touchEvery is how stale the recorded last request may get: a request
// rewrites it only when it is older (at most once a minute), so that
// browsing costs one read per page, not one write. A session thus ends
// between idle-touchEvery and idle after the last request, never later.
func touchEvery(idle time.Duration) time.Duration { return min(time.Minute, idle/4) }

// sessions reads and writes the sessions of the portal in its store.
type sessions struct {
	store SessionStore
	now   func() time.Time
	idle  time.Duration
	max   time.Duration
	// perAccount bounds the sessions of one account (0: no bound): a
	// login beyond ends the least recently used ones.
	perAccount int
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (st *sessions) expiry(created, lastSeen time.Time) time.Time {
	idle, abs := lastSeen.Add(st.idle), created.Add(st.max)
	if abs.Before(idle) {
		return abs
	}
	return idle
}

func (st *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) >= st.idle || now.Sub(s.created) >= st.max
}

// create starts a session for caller; flash and mustChange are its first
// state. When the account already has perAccount sessions, the least
// recently used ones end (on every node) and their callers are returned.
func (st *sessions) create(ctx context.Context, caller *pigp.Caller, mustChange bool, flash string) (*session, []*pigp.Caller, error) {
	now := st.now().UTC()
	var ended []*pigp.Caller
	if st.perAccount > 0 {
		gone, err := st.store.EvictSessions(ctx, caller.AccountID, st.perAccount-1, now)
		if err != nil {
			return nil, nil, err
		}
		for _, g := range gone {
			ended = append(ended, g.Caller)
		}
	}
	token := randomToken()
	ps := &pigp.PortalSession{TokenHash: pigp.SessionTokenHash(token), Caller: caller, CSRFSecret: randomToken(),
		MustChange: mustChange, Flash: flash, CreatedAt: now, LastSeenAt: now, ExpiresAt: st.expiry(now, now)}
	if err := st.store.CreateSession(ctx, ps); err != nil {
		return nil, nil, err
	}
	return fromStored(token, ps), ended, nil
}

func fromStored(token string, ps *pigp.PortalSession) *session {
	return &session{token: token, hash: ps.TokenHash, caller: ps.Caller, csrfSecret: ps.CSRFSecret, created: ps.CreatedAt,
		lastSeen: ps.LastSeenAt, mustChange: ps.MustChange, flash: ps.Flash}
}

// get returns the live session of token and records the request when the
// recorded one is older than touchEvery; expired reports whether token
// named a session that has just expired (it is deleted). A store error is
// returned as is.
func (st *sessions) get(ctx context.Context, token string) (s *session, expired bool, err error) {
	if token == "" || len(token) > 128 {
		return nil, false, nil
	}
	ps, err := st.store.FindSession(ctx, pigp.SessionTokenHash(token))
	if pigp.ErrorCode(err) == pigp.ENOTFOUND {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	s = fromStored(token, ps)
	now := st.now().UTC()
	if st.expired(s, now) {
		if err := st.store.DeleteSession(ctx, s.hash); err != nil {
			return nil, true, err
		}
		return nil, true, nil
	}
	if now.Sub(s.lastSeen) >= touchEvery(st.idle) {
		err := st.store.TouchSession(ctx, s.hash, now, st.expiry(s.created, now))
		if pigp.ErrorCode(err) == pigp.ENOTFOUND { // revoked meanwhile, on any node
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		s.lastSeen = now
	}
	return s, false, nil
}

// takeFlash returns the session's flash message and clears it.
func (st *sessions) takeFlash(ctx context.Context, s *session) (string, error) {
	f := s.flash
	if f == "" {
		return "", nil
	}
	s.flash = ""
	return f, st.store.TakeFlash(ctx, s.hash, f)
}

// Cookie names. Over HTTPS (served by the portal, or by a trusted TLS
// proxy) the __Host- prefix makes the browser refuse any cookie not set by
// this origin over HTTPS with Path=/.
func (s *Server) sessionCookieName(r *http.Request) string {
	if requestSecure(r) {
		return "__Host-pigp-session"
	}
	return "pigp-session"
}

func (s *Server) preCookieName(r *http.Request) string {
	if requestSecure(r) {
		return "__Host-pigp-pre"
	}
	return "pigp-pre"
}

// setCookie sets a cookie of the portal: HttpOnly, SameSite=Strict, and
// Secure whenever the browser reached the portal over HTTPS.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: requestSecure(r), SameSite: http.SameSiteStrictMode,
	})
}

// csrfToken returns the token forms must carry: an HMAC keyed by the
// session's CSRF secret (kept in the store, so every node checks it), or,
// before login, keyed by a random "pre-session" cookie (so the login form
// is protected too without keeping anonymous state anywhere).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request, sess *session) string {
	if sess != nil {
		return mac(sess.csrfSecret, "session")
	}
	if c, err := r.Cookie(s.preCookieName(r)); err == nil && len(c.Value) >= 32 {
		return mac(c.Value, "pre")
	}
	v := randomToken()
	s.setCookie(w, r, s.preCookieName(r), v, 0)
	// The cookie is also visible to handlers of this same request.
	r.AddCookie(&http.Cookie{Name: s.preCookieName(r), Value: v})
	return mac(v, "pre")
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
		want = mac(sess.csrfSecret, "session")
	} else if c, err := r.Cookie(s.preCookieName(r)); err == nil && len(c.Value) >= 32 {
		want = mac(c.Value, "pre")
	} else {
		return false
	}
	return hmac.Equal([]byte(token), []byte(want))
}

func mac(key, msg string) string {
	h := hmac.New(sha256.New, []byte(key))
	h.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// sessionError is the error shown when the session store fails.
func sessionError(err error) error {
	return pigp.WrapError(pigp.EUNAVAILABLE, "Le service est momentanément indisponible. Réessayez dans quelques instants.",
		fmt.Errorf("portal session: %w", err))
}
