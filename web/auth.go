package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pigp/pigp"
)

// warnDays calendar days before its expiry day, the application list warns
// about the password (within pigp.PasswordChangeWindow, the login leads
// straight to the change page).
const warnDays = 30

func (s *Server) home(w http.ResponseWriter, r *http.Request, sess *session) {
	if sess != nil {
		http.Redirect(w, r, "/applications", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/connexion", http.StatusSeeOther)
}

type loginData struct {
	Login string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, sess *session) {
	if sess != nil {
		http.Redirect(w, r, "/applications", http.StatusSeeOther)
		return
	}
	p := &page{Title: "Connexion", Data: loginData{}}
	switch {
	case r.URL.Query().Get("session") == "expiree":
		p.Error = fmt.Sprintf("Votre session a expiré après %s d'inactivité. Reconnectez-vous.", pigp.FrenchDuration(s.Config.SessionIdle))
	case r.URL.Query().Get("deconnexion") == "1":
		p.Flash = "Vous êtes déconnecté. À bientôt sur le Portail de la Gestion Publique."
	}
	s.render(w, r, nil, http.StatusOK, "connexion.html", p)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *session) {
	ip := clientIP(r)
	caller, err := s.Exchange.Login(r.Context(), ip, r.PostForm.Get("identifiant"), r.PostForm.Get("motdepasse"), requestProtocol(r))
	if err != nil {
		status, msg := s.authError(w, r, err)
		p := &page{Title: "Connexion", Data: loginData{Login: pigp.NormalizeLogin(r.PostForm.Get("identifiant"))}, Error: msg}
		s.render(w, r, nil, status, "connexion.html", p)
		return
	}
	if c, err := r.Cookie(s.sessionCookieName(r)); err == nil && c.Value != "" {
		// A new token at each login: no fixation.
		if err := s.Sessions.DeleteSession(r.Context(), pigp.SessionTokenHash(c.Value)); err != nil {
			s.fail(w, r, nil, sessionError(err))
			return
		}
	}
	caller.Session = "web-" + randomToken()[:16] // names the session in logs and audit counts, never the cookie
	target, mustChange, flash := "/applications", false, ""
	switch {
	case caller.PasswordTemporary:
		target, mustChange = "/mot-de-passe", true
		flash = "Votre mot de passe est provisoire : choisissez dès maintenant votre mot de passe personnel."
	case caller.PasswordChangeDue(s.Exchange.Now()):
		target = "/mot-de-passe"
		flash = fmt.Sprintf("Votre mot de passe expire le %s : modifiez-le dès maintenant.", longDate(caller.PasswordExpiresAt))
	}
	sess, ended, err := s.sessions.create(r.Context(), caller, mustChange, flash)
	if err != nil {
		s.Logger.Error("portal session not created", "login", caller.Login, "ip", ip, "error", err)
		s.fail(w, r, nil, sessionError(err))
		return
	}
	for _, e := range ended {
		s.Logger.Info("portal session ended: account at its session limit", "login", e.Login, "max", s.Config.MaxSessionsPerAccount)
		s.Exchange.EndSession(r.Context(), e)
	}
	s.setCookie(w, r, s.sessionCookieName(r), sess.token, 0)
	s.setCookie(w, r, s.preCookieName(r), "", -1)
	s.Logger.Info("portal login", "login", caller.Login, "ip", ip)
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// authError maps an error of a login or a password change, once for the
// portal: the status and the French message, and when to retry
// (Retry-After) for an attempt refused because of earlier failures.
func (s *Server) authError(w http.ResponseWriter, r *http.Request, err error) (int, string) {
	if wait := pigp.RetryAfter(err); wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds()+0.999)))
	}
	return s.errorResponse(r, err)
}

// logout ends every session of the account, on every node: the user's
// other browsers are logged out too.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess *session) {
	n, err := s.Sessions.DeleteAccountSessions(r.Context(), sess.caller.AccountID)
	if err != nil {
		s.Logger.Error("portal logout: sessions not revoked", "login", sess.caller.Login, "error", err)
		s.fail(w, r, sess, sessionError(err))
		return
	}
	s.Exchange.EndSession(r.Context(), sess.caller)
	s.setCookie(w, r, s.sessionCookieName(r), "", -1)
	s.Logger.Info("portal logout", "login", sess.caller.Login, "ip", clientIP(r), "sessions", n)
	http.Redirect(w, r, "/connexion?deconnexion=1", http.StatusSeeOther)
}

type applicationsData struct {
	ExpiresAt time.Time
	DaysLeft  int
	Warn      bool
}

func (s *Server) applications(w http.ResponseWriter, r *http.Request, sess *session) {
	// The warning counts whole calendar days in Paris, as the date shown
	// beside it: a password expiring on the 20th is "dans 19 jours" on the 1st.
	now, expires := s.Exchange.Now(), sess.caller.PasswordExpiresAt
	d := applicationsData{ExpiresAt: expires, DaysLeft: pigp.DaysUntil(now, expires)}
	d.Warn = d.DaysLeft <= warnDays && !sess.caller.FromDirectory()
	s.render(w, r, sess, http.StatusOK, "applications.html", &page{Title: "Applications", Data: d})
}

// accountPage is the "PIGP" application of the list: the account itself.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.render(w, r, sess, http.StatusOK, "compte.html", &page{Title: "Votre compte"})
}

type passwordData struct {
	Login     string
	MinLength int
	MinAlnum  int
	MaxLength int
	History   int
	Months    int
	MinLevel  string
	Temporary bool
	// DirectoryManaged says why a directory agent changes no password here.
	DirectoryManaged string
}

func (s *Server) passwordData(sess *session) passwordData {
	return passwordData{Login: sess.caller.Login, MinLength: pigp.MinPasswordLength, MinAlnum: pigp.MinAlnumPasswordLength,
		MaxLength: pigp.MaxPasswordLength, History: pigp.PasswordHistory, Months: s.Exchange.Rules().PasswordValidityMonths,
		MinLevel: pigp.Strength{Score: pigp.MinPasswordScore}.Label(), Temporary: sess.mustChange,
		DirectoryManaged: pigp.MsgDirectoryPasswordManaged}
}

func (s *Server) passwordPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.render(w, r, sess, http.StatusOK, "mot-de-passe.html", &page{Title: "Changement de mot de passe", Data: s.passwordData(sess)})
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, sess *session) {
	current, next, confirm := r.PostForm.Get("actuel"), r.PostForm.Get("nouveau"), r.PostForm.Get("confirmation")
	var caller *pigp.Caller
	err := error(errConfirmation)
	if next == confirm {
		caller, err = s.Exchange.ChangePassword(r.Context(), callerFor(r, sess), current, next)
	}
	if err != nil {
		status, msg := s.authError(w, r, err)
		p := &page{Title: "Changement de mot de passe", Data: s.passwordData(sess), Error: msg}
		s.render(w, r, sess, status, "mot-de-passe.html", p)
		return
	}
	s.Logger.Info("portal password changed", "login", caller.Login, "ip", caller.RemoteIP)
	// The new password ended every session of the account (on every
	// node); this browser continues in a new one, with the caller as the
	// new password leaves it (its expiry date, no longer temporary).
	if _, err := s.Sessions.DeleteAccountSessions(r.Context(), caller.AccountID); err != nil {
		s.fail(w, r, nil, sessionError(err))
		return
	}
	fresh, _, err := s.sessions.create(r.Context(), caller, false,
		fmt.Sprintf("Votre mot de passe a été modifié. Il est valable jusqu'au %s.", longDate(caller.PasswordExpiresAt)))
	if err != nil {
		s.fail(w, r, nil, sessionError(err))
		return
	}
	s.setCookie(w, r, s.sessionCookieName(r), fresh.token, 0)
	http.Redirect(w, r, "/applications", http.StatusSeeOther)
}

// strengthReply is the answer of the live strength indicator.
type strengthReply struct {
	Score    int    `json:"score"`
	Level    string `json:"niveau"`
	Accepted bool   `json:"accepte"`
	Message  string `json:"message"`
}

// passwordStrength evaluates a candidate password with the one policy of
// pigp, for the indicator of the change page.
func (s *Server) passwordStrength(w http.ResponseWriter, r *http.Request, sess *session) {
	var req struct {
		Password string `json:"motdepasse"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "message": errBadRequest.Message})
		return
	}
	c := sess.caller
	st := pigp.PasswordStrength(req.Password, pigp.StrengthInputs(c.Login, c.Name, c.SIRETs)...)
	rep := strengthReply{Score: st.Score, Level: st.Label(), Accepted: true}
	if req.Password == "" {
		rep.Level = ""
	}
	if err := pigp.CheckPassword(req.Password, c.Login, c.Name, c.SIRETs); err != nil {
		rep.Accepted, rep.Message = false, pigp.ErrorMessage(err)
	}
	writeJSON(w, http.StatusOK, rep)
}
