package web

import (
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// helpPages are the pages under /aide/, open to everyone: their template
// and title.
var helpPages = map[string]struct{ template, title string }{
	"guide-acces":          {"aide-guide-acces.html", "Guide d'accès au Portail de la Gestion Publique"},
	"faq":                  {"aide-faq.html", "Foire aux questions"},
	"assistance":           {"aide-assistance.html", "Coordonnées du service d'assistance"},
	"en-ligne":             {"aide-en-ligne.html", "Aide en ligne"},
	"charte":               {"aide-charte.html", "Charte d'usage des Technologies de l'Information et de la Communication"},
	"pgssi":                {"aide-pgssi.html", "Politique Générale de Sécurité du Système d'Information"},
	"alerte-escroquerie":   {"aide-alerte-escroquerie.html", "Plaquette d'information : fraude aux faux ordres de virement"},
	"accessibilite":        {"aide-accessibilite.html", "Déclaration d'accessibilité"},
	"mentions-legales":     {"aide-mentions-legales.html", "Mentions légales"},
	"donnees-personnelles": {"aide-donnees-personnelles.html", "Données personnelles"},
}

func (s *Server) helpPage(w http.ResponseWriter, r *http.Request, sess *session) {
	hp, ok := helpPages[r.PathValue("page")]
	if !ok {
		s.fail(w, r, sess, errNotFound)
		return
	}
	s.render(w, r, sess, http.StatusOK, hp.template, &page{Title: hp.title})
}

// specFile is the cahier des charges in Config.Docs.
const specFile = "cahier-des-charges.md"

type docsData struct {
	Schemas []string
	Spec    bool
	HTML    template.HTML
}

func (s *Server) schemas() []string {
	if s.Config.Schemas == nil {
		return nil
	}
	names, _ := fs.Glob(s.Config.Schemas, "*.xsd")
	sort.Strings(names)
	return names
}

func (s *Server) hasSpec() bool {
	if s.Config.Docs == nil {
		return false
	}
	_, err := fs.Stat(s.Config.Docs, specFile)
	return err == nil
}

func (s *Server) docsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.render(w, r, sess, http.StatusOK, "documentation.html", &page{Title: "Documentation technique",
		Data: docsData{Schemas: s.schemas(), Spec: s.hasSpec()}})
}

var xsdName = regexp.MustCompile(`^[A-Za-z0-9_-]+\.xsd$`)

func (s *Server) schema(w http.ResponseWriter, r *http.Request, sess *session) {
	name := r.PathValue("name")
	if !xsdName.MatchString(name) {
		s.fail(w, r, sess, errNotFound)
		return
	}
	s.sendDoc(w, r, sess, s.Config.Schemas, name, "application/xml")
}

func (s *Server) specFile(w http.ResponseWriter, r *http.Request, sess *session) {
	s.sendDoc(w, r, sess, s.Config.Docs, specFile, "text/markdown; charset=utf-8")
}

func (s *Server) sendDoc(w http.ResponseWriter, r *http.Request, sess *session, fsys fs.FS, name, ctype string) {
	if fsys == nil {
		s.fail(w, r, sess, errNotFound)
		return
	}
	f, err := fsys.Open(name)
	if err != nil {
		s.fail(w, r, sess, errNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	io.Copy(w, f)
}

func (s *Server) specPage(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.Config.Docs == nil {
		s.fail(w, r, sess, errNotFound)
		return
	}
	b, err := fs.ReadFile(s.Config.Docs, specFile)
	if err != nil {
		s.fail(w, r, sess, errNotFound)
		return
	}
	s.render(w, r, sess, http.StatusOK, "cahier-des-charges.html", &page{Title: "Cahier des charges",
		Data: docsData{Schemas: s.schemas(), Spec: true, HTML: markdown(string(b))}})
}

// markdown renders the subset of Markdown the cahier des charges uses —
// headings, paragraphs, lists, fenced code, tables, inline code, bold and
// links — escaping everything else. The output is safe HTML.
func markdown(src string) template.HTML {
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var para []string
	list := ""
	flush := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "```"):
			flush()
			closeList()
			b.WriteString("<pre><code>")
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				b.WriteString(template.HTMLEscapeString(lines[i]) + "\n")
			}
			b.WriteString("</code></pre>\n")
		case t == "":
			flush()
			closeList()
		case strings.HasPrefix(t, "#"):
			flush()
			closeList()
			level := len(t) - len(strings.TrimLeft(t, "#"))
			level = min(level+1, 6) // the page title is the h1
			text := strings.TrimSpace(t[len(t)-len(strings.TrimLeft(t, "#")):])
			b.WriteString("<h" + string(rune('0'+level)) + ">" + inline(text) + "</h" + string(rune('0'+level)) + ">\n")
		case strings.HasPrefix(t, "|"):
			flush()
			closeList()
			b.WriteString(`<div class="fr-table"><table>`)
			header := true
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				row := strings.Trim(strings.TrimSpace(lines[i]), "|")
				cells := strings.Split(row, "|")
				if strings.Trim(row, "-:| ") == "" {
					continue // separator row
				}
				tag := "td"
				if header {
					tag = "th"
					b.WriteString("<thead>")
				}
				b.WriteString("<tr>")
				for _, c := range cells {
					b.WriteString("<" + tag + ">" + inline(strings.TrimSpace(c)) + "</" + tag + ">")
				}
				b.WriteString("</tr>")
				if header {
					b.WriteString("</thead><tbody>")
					header = false
				}
			}
			i--
			b.WriteString("</tbody></table></div>\n")
		case strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") || orderedItem.MatchString(t):
			flush()
			kind := "ul"
			if orderedItem.MatchString(t) {
				kind = "ol"
			}
			if list != kind {
				closeList()
				b.WriteString("<" + kind + ">\n")
				list = kind
			}
			item := orderedItem.ReplaceAllString(t, "")
			if kind == "ul" {
				item = t[2:]
			}
			b.WriteString("<li>" + inline(item) + "</li>\n")
		default:
			closeList()
			para = append(para, t)
		}
	}
	flush()
	closeList()
	return template.HTML(b.String())
}

var (
	orderedItem = regexp.MustCompile(`^\d+[.)] `)
	inlineCode  = regexp.MustCompile("`([^`]+)`")
	boldText    = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	linkText    = regexp.MustCompile(`\[([^\]]+)\]\((https?://[^)\s"]+|#[A-Za-z0-9_-]+)\)`)
)

// inline escapes text, then renders `code`, **bold** and [links](url).
func inline(text string) string {
	t := template.HTMLEscapeString(text)
	t = inlineCode.ReplaceAllString(t, "<code>$1</code>")
	t = boldText.ReplaceAllString(t, "<strong>$1</strong>")
	t = linkText.ReplaceAllString(t, `<a href="$2">$1</a>`)
	return t
}
