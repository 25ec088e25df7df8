package web

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/pigp/pigp"
)

//go:generate npm ci --prefix assets --no-audit --no-fund --ignore-scripts
//go:generate go run ./assets -modules assets/node_modules -dsfr static/dsfr

//go:embed static
var staticFiles embed.FS

// routes returns the portal's handler with its middleware.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	fileServer := http.StripPrefix("/static/", s.files(static))
	mux.Handle("GET /static/", cacheFor(24*time.Hour, fileServer))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = "/static/dsfr/favicon/favicon.ico"
		cacheFor(24*time.Hour, fileServer).ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)

	mux.Handle("GET /{$}", s.public(s.home))
	mux.Handle("GET /connexion", s.public(s.loginPage))
	mux.Handle("POST /connexion", s.public(s.login))
	mux.Handle("POST /deconnexion", s.private(s.logout))
	mux.Handle("GET /applications", s.private(s.applications))
	mux.Handle("GET /compte", s.private(s.accountPage))
	mux.Handle("GET /apa", s.private(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, "/apa/depot", http.StatusSeeOther)
	}))
	mux.Handle("GET /apa/depot", s.private(s.depositPage))
	mux.Handle("POST /apa/depot", s.private(s.deposit))
	mux.Handle("GET /apa/retrait", s.private(s.responsesPage))
	mux.Handle("GET /apa/retrait/{name}", s.private(s.download))
	mux.Handle("GET /apa/historique-depots", s.private(s.depositHistory))
	mux.Handle("GET /apa/historique-retraits", s.private(s.downloadHistory))
	mux.Handle("GET /apa/historique/{file}", s.private(s.historyFile))
	mux.Handle("GET /apa/journal-audit", s.private(s.auditExportPage))
	mux.Handle("GET /apa/journal-audit/export", s.private(s.auditExport))
	mux.Handle("GET /mot-de-passe", s.private(s.passwordPage))
	mux.Handle("POST /mot-de-passe", s.private(s.changePassword))
	mux.Handle("POST /mot-de-passe/niveau", s.private(s.passwordStrength))
	mux.Handle("GET /aide/{page}", s.public(s.helpPage))
	mux.Handle("GET /documentation", s.public(s.docsPage))
	mux.Handle("GET /documentation/schemas/{name}", s.public(s.schema))
	mux.Handle("GET /documentation/cahier-des-charges", s.public(s.specPage))
	mux.Handle("GET /documentation/cahier-des-charges.md", s.public(s.specFile))
	mux.Handle("/", s.public(func(w http.ResponseWriter, r *http.Request, sess *session) {
		s.fail(w, r, sess, errNotFound)
	}))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Logger.Warn("cross-origin request refused", "method", r.Method, "path", r.URL.Path, "ip", clientIP(r))
		s.fail(w, r, nil, errCSRF)
	}))
	return s.withClient(s.recoverPanics(s.securityHeaders(cop.Handler(mux))))
}

// securityHeaders sets the headers every response carries.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if requestSecure(r) {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic into a 500 with a French page.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.fail(w, r, nil, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// files serves the embedded assets. Only files: a directory is never
// listed nor redirected to, it is not found (404) like any unknown path.
func (s *Server) files(static fs.FS) http.Handler {
	server := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if fi, err := fs.Stat(static, name); err != nil || fi.IsDir() || strings.HasSuffix(name, "/") {
			s.fail(w, r, nil, errNotFound)
			return
		}
		server.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

type handler func(w http.ResponseWriter, r *http.Request, sess *session)

// session returns the request's live session, if any, and whether a
// session cookie named one that has expired. A store error is returned.
func (s *Server) session(r *http.Request) (*session, bool, error) {
	c, err := r.Cookie(s.sessionCookieName(r))
	if err != nil {
		return nil, false, nil
	}
	sess, expired, err := s.sessions.get(r.Context(), c.Value)
	if err != nil {
		s.Logger.Error("portal session unavailable", "path", r.URL.Path, "ip", clientIP(r), "error", err)
		return nil, false, sessionError(err)
	}
	return sess, expired, nil
}

// public serves pages open to everyone; a logged-in visitor keeps the
// session's header. Form posts must carry the CSRF token.
func (s *Server) public(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, _, err := s.session(r)
		if err != nil {
			s.fail(w, r, nil, err)
			return
		}
		if r.Method == http.MethodPost && !s.formCSRF(w, r, sess) {
			s.fail(w, r, sess, errCSRF)
			return
		}
		h(w, r, sess)
	})
}

// private serves pages that need a session. Without one the visitor goes
// to the login page (scripts get a 401); while a temporary password is not
// changed, only the password pages are reachable.
func (s *Server) private(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, expired, err := s.session(r)
		if err != nil {
			s.fail(w, r, nil, err)
			return
		}
		if sess == nil {
			if expired {
				s.setCookie(w, r, s.sessionCookieName(r), "", -1)
			}
			if wantsJSON(r) {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false,
					"message": "Votre session a expiré. Reconnectez-vous."})
				return
			}
			target := "/connexion"
			if expired {
				target += "?session=expiree"
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !s.formCSRF(w, r, sess) {
			s.fail(w, r, sess, errCSRF)
			return
		}
		if sess.mustChange && !strings.HasPrefix(r.URL.Path, "/mot-de-passe") && r.URL.Path != "/deconnexion" {
			http.Redirect(w, r, "/mot-de-passe", http.StatusSeeOther)
			return
		}
		h(w, r, sess)
	})
}

// formCSRF checks the CSRF token of a post. Multipart bodies (uploads)
// are not parsed here: their handler reads the token from the first part
// as it streams. Small forms are bounded to 64 KiB.
func (s *Server) formCSRF(w http.ResponseWriter, r *http.Request, sess *session) bool {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return true // checked by the upload handler
	}
	if tok := r.Header.Get("X-CSRF-Token"); tok != "" {
		return s.checkCSRF(r, sess, tok)
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return false
	}
	return s.checkCSRF(r, sess, r.PostForm.Get("csrf"))
}

// requestProtocol is the one place that says which protocol a request
// came by, as recorded in the history and the audit trail: HTTPS when the
// browser reached the portal over HTTPS (the portal's own TLS, or a
// trusted reverse proxy's X-Forwarded-Proto: https), HTTP otherwise.
func requestProtocol(r *http.Request) string {
	if requestSecure(r) {
		return pigp.ProtocolHTTPS
	}
	return pigp.ProtocolHTTP
}

// callerFor returns the session's caller for this request: the request's
// protocol and the current client address.
func callerFor(r *http.Request, sess *session) *pigp.Caller {
	c := *sess.caller
	c.RemoteIP = clientIP(r)
	c.Protocol = requestProtocol(r)
	return &c
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// readyz answers a balancer's question: should new clients be sent to
// this node? 503 with the reason while it stops (draining), when it cannot
// reach the database (no login could complete on it) or the content store,
// and when the content store is below min_free_space (uploads are refused:
// issue 12 asks for "not ready" there, see docs/exploitation.md §4.5 for
// what it means behind a balancer); 200 "degraded: …" when only the
// directory is missing (local accounts still work); 200 "ready" otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		// Stopping: the balancer takes the node out before it stops
		// accepting.
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "draining")
		return
	}
	if s.DB != nil {
		if err := s.DB.Ping(r.Context()); err != nil {
			s.Logger.Error("readiness: database unreachable", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "database unavailable")
			return
		}
	}
	if s.Contents != nil {
		if err := s.Contents.Check(r.Context()); err != nil {
			s.Logger.Error("readiness: content store unavailable", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "content store unavailable")
			return
		}
	}
	if s.Space != nil {
		if free, required, ok, _ := s.Space.SpaceStatus(); !ok {
			s.Logger.Warn("readiness: free disk space below min_free_space, uploads refused", "free", free, "required", required)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: free disk space of the content store below min_free_space (%d bytes free, %d required): uploads are refused\n", free, required)
			return
		}
	}
	var degraded []string
	if s.Directory != nil {
		if err := s.Directory.Check(r.Context()); err != nil {
			// Local accounts still work.
			s.Logger.Warn("readiness: directory unavailable", "error", err)
			degraded = append(degraded, "directory unavailable")
		}
	}
	if len(degraded) > 0 {
		fmt.Fprintln(w, "degraded: "+strings.Join(degraded, "; "))
		return
	}
	fmt.Fprintln(w, "ready")
}
