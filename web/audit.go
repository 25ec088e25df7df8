package web

import (
	"fmt"
	"net/http"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

// errAuditorOnly refuses the audit export's page to a caller who audits
// no SIRET (the exchange refuses the export itself the same way).
var errAuditorOnly = pigp.Errorf(pigp.EFORBIDDEN, "%s", pigp.MsgAuditExportReserved)

// dayLayout is the value of a date field (<input type="date">).
const dayLayout = "2006-01-02"

type auditExportData struct {
	SIRETs   []string
	From, To string // the form's days
	Columns  []string
}

// auditExportPage shows an auditeur the export form of its SIRETs' audit
// trail, the period set to the history window.
func (s *Server) auditExportPage(w http.ResponseWriter, r *http.Request, sess *session) {
	sirets := sess.caller.AuditedSIRETs()
	if len(sirets) == 0 {
		s.fail(w, r, sess, errAuditorOnly)
		return
	}
	now := s.Exchange.Now().In(apa.Paris)
	s.render(w, r, sess, http.StatusOK, "journal-audit.html", &page{Title: "Export du journal d'audit", Nav: "journal-audit",
		Data: auditExportData{SIRETs: sirets, From: now.AddDate(0, -s.Exchange.Rules().HistoryMonths, 0).Format(dayLayout),
			To: now.Format(dayLayout), Columns: pigp.AuditHeader}})
}

// auditExport sends the audit export of the caller's audited SIRETs as a
// CSV download, streamed from the exchange. The period is given in days
// (du, au: both included, Paris time; empty: open). A refusal or an error
// met before the first byte gets the French error page; once the file has
// begun, an error aborts the connection so that the browser reports a
// failed download rather than keeping a short file.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request, sess *session) {
	if r.Method == http.MethodHead {
		// Every export is audited: a HEAD (a link checker, a prefetch)
		// must not record one, and has nothing to describe without it.
		w.Header().Set("Allow", http.MethodGet)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	caller := callerFor(r, sess)
	from, to, err := exportPeriod(r)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	out := &csvDownload{w: w, name: pigp.AuditExportName(from, to, s.Exchange.Now())}
	if _, err := s.Exchange.AuditExport(r.Context(), caller, from, to, out); err != nil {
		if !out.started {
			s.fail(w, r, sess, err)
			return
		}
		panic(http.ErrAbortHandler) // the exchange logged why

	}
}

// exportPeriod reads the days du and au of the request: [du 00:00, the
// day after au 00:00[ in Paris time.
func exportPeriod(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	if v := q.Get("du"); v != "" {
		if from, err = time.ParseInLocation(dayLayout, v, apa.Paris); err != nil {
			return from, to, pigp.Errorf(pigp.EINVALID, "Date de début invalide : %q n'est pas une date au format AAAA-MM-JJ.", v)
		}
	}
	if v := q.Get("au"); v != "" {
		if to, err = time.ParseInLocation(dayLayout, v, apa.Paris); err != nil {
			return from, to, pigp.Errorf(pigp.EINVALID, "Date de fin invalide : %q n'est pas une date au format AAAA-MM-JJ.", v)
		}
		to = to.AddDate(0, 0, 1)
	}
	return from, to, nil
}

// csvDownload sends the headers of a CSV attachment before its first
// byte, so that nothing is committed to the response while the exchange
// may still refuse.
type csvDownload struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (d *csvDownload) Write(p []byte) (int, error) {
	if !d.started {
		d.started = true
		h := d.w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", d.name))
		h.Set("Cache-Control", "no-store")
		d.w.WriteHeader(http.StatusOK)
	}
	return d.w.Write(p)
}
