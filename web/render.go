package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/exchange"
)

//go:embed templates/*.html
var templateFiles embed.FS

// longDate writes t as "23 septembre 2027" ("1er décembre 2027"), in Paris time.
func longDate(t time.Time) string { return pigp.FrenchDate(t) }

// shortDate writes t as the portal does: 25-07-2018, in Paris time.
func shortDate(t time.Time) string { return t.In(apa.Paris).Format("02-01-2006") }

// dateTime writes t as 25-07-2018 16:41:30, in Paris time.
func dateTime(t time.Time) string { return t.In(apa.Paris).Format("02-01-2006 15:04:05") }

// statusLabels name the deposit statuses.
var statusLabels = map[string]string{
	pigp.DepositReceived:   "Reçu",
	pigp.DepositProcessing: "En cours de traitement",
	pigp.DepositProcessed:  "Traité",
	pigp.DepositRejected:   "Rejeté",
}

// breakable writes a file name with a line-break opportunity after each
// "_" (and before the ".SIRET" that ends an internal name) and nowhere
// else, so that a narrow column wraps 2026_22940028800010_20261128101500_REP.xml
// between its parts, never in the middle of a SIRET or a time.
func breakable(name string) template.HTML {
	parts := strings.Split(name, "_")
	for i, p := range parts {
		p = template.HTMLEscapeString(p)
		if base, siret, ok := strings.Cut(p, ".xml."); ok {
			p = base + ".xml<wbr>." + siret
		}
		parts[i] = p
	}
	return template.HTML(strings.Join(parts, "_<wbr>"))
}

var funcs = template.FuncMap{
	"breakable": breakable,
	"longDate":  longDate,
	"shortDate": shortDate,
	"dateTime":  dateTime,
	"size":      exchange.FormatSize,
	"upper":     strings.ToUpper,
	"status":    func(s string) string { return statusLabels[s] },
	"statusClass": func(s string) string {
		switch s {
		case pigp.DepositProcessed:
			return "fr-badge--success"
		case pigp.DepositRejected:
			return "fr-badge--error"
		case pigp.DepositProcessing:
			return "fr-badge--info"
		default:
			return "fr-badge--new"
		}
	},
	"optDate": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return shortDate(*t)
	},
	"join": strings.Join,
	"inc":  func(n int) int { return n + 1 },
	"days": func(d time.Duration) int { return int(d.Hours() / 24) },
	"dur":  pigp.FrenchDuration,
	"dec":  func(n int) int { return n - 1 },
}

// parseTemplates parses each page with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	pages, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		name := path.Base(p)
		if name == "layout.html" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", p)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// page is what every template receives.
type page struct {
	Title  string
	Nav    string // active entry: "depot", "retrait", "historique-depots", "historique-retraits", "journal-audit"
	Caller *pigp.Caller
	CSRF   string
	Flash  string // a success message
	Error  string // an error message
	Config *Config
	Data   any
}

// render writes a page with status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, sess *session, status int, name string, p *page) {
	t, ok := s.tmpl[name]
	if !ok {
		s.Logger.Error("unknown template", "template", name)
		http.Error(w, "Erreur interne du serveur.", http.StatusInternalServerError)
		return
	}
	if sess != nil {
		p.Caller = sess.caller
		if p.Flash == "" {
			flash, err := s.sessions.takeFlash(r.Context(), sess)
			if err != nil {
				s.Logger.Error("portal session: clear flash message", "error", err)
			}
			p.Flash = flash
		}
	}
	p.CSRF = s.csrfToken(w, r, sess)
	p.Config = &s.Config
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.Logger.Error("render page", "template", name, "error", err)
		http.Error(w, "Erreur interne du serveur.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
