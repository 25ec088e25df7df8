package web

import (
	"net/http"

	"github.com/pigp/pigp"
)

// httpStatus maps the error codes of pigp to HTTP statuses, once for the
// whole portal.
func httpStatus(code string) int {
	switch code {
	case pigp.EINVALID:
		return http.StatusBadRequest
	case pigp.ENOTFOUND:
		return http.StatusNotFound
	case pigp.ECONFLICT:
		return http.StatusConflict
	case pigp.EFORBIDDEN, pigp.EEXPIRED:
		return http.StatusForbidden
	case pigp.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case pigp.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case pigp.EUNAVAILABLE, pigp.EDIRECTORY:
		return http.StatusServiceUnavailable
	case pigp.ELIMIT:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// errorResponse logs err when it is internal and returns the status and
// the French message to show; the internal text never reaches the client.
func (s *Server) errorResponse(r *http.Request, err error) (int, string) {
	code := pigp.ErrorCode(err)
	if code == pigp.EINTERNAL {
		s.Logger.Error("portal request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	return httpStatus(code), pigp.ErrorMessage(err)
}

// fail renders err as an error page, or as JSON for scripts.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status, msg := s.errorResponse(r, err)
	if wantsJSON(r) {
		writeJSON(w, status, map[string]any{"ok": false, "message": msg})
		return
	}
	s.render(w, r, sess, status, "erreur.html", &page{Title: "Erreur", Error: msg, Data: status})
}

// wantsJSON reports whether the request comes from the portal's scripts.
func wantsJSON(r *http.Request) bool {
	return r.Header.Get("X-Requested-With") == "XMLHttpRequest"
}

// Errors of the portal itself.
var (
	errCSRF          = pigp.Errorf(pigp.EFORBIDDEN, "La page a expiré ou la requête ne provient pas du portail. Rechargez la page et recommencez.")
	errNotFound      = pigp.Errorf(pigp.ENOTFOUND, "La page demandée n'existe pas.")
	errBadRequest    = pigp.Errorf(pigp.EINVALID, "Requête invalide.")
	errNoFile        = pigp.Errorf(pigp.EINVALID, "Sélectionnez sur votre poste le fichier à transmettre.")
	errConfirmation  = pigp.Errorf(pigp.EINVALID, "La confirmation ne correspond pas au nouveau mot de passe.")
	errUploadTooBig  = "dépôt refusé : le fichier dépasse la taille maximale autorisée (%s)"
	errUploadAborted = pigp.Errorf(pigp.EINVALID, "Le transfert a été interrompu avant la fin : aucun dépôt n'a été enregistré. Recommencez.")
)
