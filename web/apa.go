package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pigp/pigp"
)

type depositData struct {
	MaxSize  int64
	Deposit  *pigp.Deposit
	FileName string
}

func (s *Server) depositPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.render(w, r, sess, http.StatusOK, "depot.html", &page{Title: "Dépôt fichiers d'appel", Nav: "depot",
		Data: depositData{MaxSize: s.Exchange.Rules().MaxUploadSize}})
}

// uploadChunk is how much of an upload is held in memory at once.
const uploadChunk = 256 << 10

// deposit receives a call file as multipart/form-data: the "csrf" field
// first, then the "fichier" part, streamed to the exchange chunk by chunk
// and committed once complete. Scripts (the progress bar) get JSON; a
// plain form post gets the page with the result.
func (s *Server) deposit(w http.ResponseWriter, r *http.Request, sess *session) {
	caller := callerFor(r, sess)
	d, name, err := s.receive(w, r, sess, caller)
	if wantsJSON(r) {
		if err != nil {
			status, msg := s.errorResponse(r, err)
			writeJSON(w, status, map[string]any{"ok": false, "message": msg})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": d.ID, "nom": d.ExternalName,
			"taille": pigp.FormatSize(d.Size), "message": depositConfirmation(d)})
		return
	}
	p := &page{Title: "Dépôt fichiers d'appel", Nav: "depot", Data: depositData{MaxSize: s.Exchange.Rules().MaxUploadSize, Deposit: d, FileName: name}}
	status := http.StatusOK
	if err != nil {
		status, p.Error = s.errorResponse(r, err)
	}
	s.render(w, r, sess, status, "depot.html", p)
}

func depositConfirmation(d *pigp.Deposit) string {
	if d.Duplicate {
		return fmt.Sprintf("Ce fichier %s (%s), identique, avait déjà été déposé le %s : il n'a pas été déposé une seconde fois. Identifiant du dépôt : %s.",
			d.ExternalName, pigp.FormatSize(d.Size), dateTime(d.DepositedAt), d.ID)
	}
	return fmt.Sprintf("Le fichier %s (%s) a bien été déposé. Identifiant du dépôt : %s.", d.ExternalName, pigp.FormatSize(d.Size), d.ID)
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request, sess *session, caller *pigp.Caller) (*pigp.Deposit, string, error) {
	// The body holds the file plus a few small fields and boundaries.
	r.Body = http.MaxBytesReader(w, r.Body, s.Exchange.Rules().MaxUploadSize+64<<10)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", errBadRequest
	}
	csrfOK := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, "", errNoFile
		}
		if err != nil {
			return nil, "", s.bodyError(err)
		}
		switch part.FormName() {
		case "csrf":
			tok, _ := io.ReadAll(io.LimitReader(part, 256))
			csrfOK = s.checkCSRF(r, sess, string(tok))
		case "fichier":
			if !csrfOK {
				return nil, "", errCSRF
			}
			name := baseName(part.FileName())
			if name == "" {
				return nil, "", errNoFile
			}
			d, err := s.store(r, caller, name, part)
			return d, name, err
		}
		part.Close()
	}
}

// store streams one file part into a new deposit.
func (s *Server) store(r *http.Request, caller *pigp.Caller, name string, src io.Reader) (*pigp.Deposit, error) {
	up, err := s.Exchange.BeginDeposit(r.Context(), caller, name)
	if err != nil {
		s.Logger.Info("portal deposit refused", append([]any{"login", caller.Login, "ip", caller.RemoteIP},
			pigp.RefusedNameAttrs(name, err)...)...)
		return nil, err
	}
	buf := make([]byte, uploadChunk)
	var off int64
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if _, err := up.WriteAt(buf[:n], off); err != nil {
				up.Abort()
				return nil, err
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			up.Abort()
			return nil, s.bodyError(rerr)
		}
	}
	d, err := up.Commit(r.Context())
	if err != nil {
		return nil, err
	}
	return d, nil
}

// bodyError maps a failure to read the request body to a French error.
func (s *Server) bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return pigp.Errorf(pigp.ETOOLARGE, errUploadTooBig, pigp.FormatSize(s.Exchange.Rules().MaxUploadSize))
	}
	return pigp.WrapError(pigp.EINVALID, errUploadAborted.Message, err)
}

// baseName keeps the last element of a client file name (some browsers
// send a full Windows path).
func baseName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return strings.TrimSpace(name)
}

type responsesData struct {
	Responses []*pigp.Response
	Days      int
}

func (s *Server) responsesPage(w http.ResponseWriter, r *http.Request, sess *session) {
	rs, err := s.Exchange.Responses(r.Context(), callerFor(r, sess))
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, r, sess, http.StatusOK, "retrait.html", &page{Title: "Retrait fichiers réponse", Nav: "retrait",
		Data: responsesData{Responses: rs, Days: int(s.Exchange.Rules().Retention.Hours() / 24)}})
}

// download sends a response through the exchange, which records the
// download (and the first-download date) once every byte was read, as over
// SFTP. The whole file is read before its last chunk is written, so the
// record exists by the time the browser has the complete file. Range
// requests are served too; a partial read records nothing.
func (s *Server) download(w http.ResponseWriter, r *http.Request, sess *session) {
	caller := callerFor(r, sess)
	rr, err := s.Exchange.OpenResponse(r.Context(), caller, r.PathValue("name"))
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	defer rr.Close()
	resp := rr.Response()
	ctype := "application/octet-stream"
	if strings.HasSuffix(resp.Name, ".xml") {
		ctype = "application/xml"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", resp.Name))
	h.Set("Cache-Control", "no-store")
	if rng := r.Header.Get("Range"); rng != "" {
		if msg := checkRange(rng, resp.Size); msg != "" {
			s.Logger.Info("portal range refused", "login", caller.Login, "ip", caller.RemoteIP, "range", rng)
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", resp.Size))
			h.Del("Content-Disposition")
			if wantsJSON(r) {
				writeJSON(w, http.StatusRequestedRangeNotSatisfiable, map[string]any{"ok": false, "message": msg})
				return
			}
			s.render(w, r, sess, http.StatusRequestedRangeNotSatisfiable, "erreur.html", &page{Title: "Erreur", Error: msg,
				Data: http.StatusRequestedRangeNotSatisfiable})
			return
		}
	}
	if r.Header.Get("Range") != "" || r.Method == http.MethodHead {
		http.ServeContent(w, r, "", resp.AvailableAt, io.NewSectionReader(rr, 0, resp.Size))
		return
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(resp.Size, 10))
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, uploadChunk)
	for off := int64(0); off < resp.Size; {
		n, err := rr.ReadAt(buf[:min(int64(len(buf)), resp.Size-off)], off)
		if n == 0 {
			s.Logger.Error("read response for portal download", "response", resp.ID, "error", err)
			return
		}
		off += int64(n)
		if off == resp.Size {
			// Records the download. If it cannot be recorded, the last
			// chunk is not sent: the browser reports a failed download.
			if err := rr.Close(); err != nil {
				s.Logger.Error("record portal download", "response", resp.ID, "error", err)
				return
			}
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
	}
	if resp.Size == 0 {
		if err := rr.Close(); err != nil {
			s.Logger.Error("record portal download", "response", resp.ID, "error", err)
		}
	}
}

// pager describes the numbered pages of a history.
type pager struct {
	Page, Pages int
	Base        string
	Numbers     []int // 0 stands for an ellipsis
}

// newPager numbers the pages around page p of a history: the first, the
// last and two on each side of p.
func newPager(base string, p *pigp.HistoryPage) pager {
	pg := pager{Page: p.Page, Pages: p.Pages, Base: base}
	last := 0
	for n := 1; n <= p.Pages; n++ {
		if n == 1 || n == p.Pages || (n >= p.Page-2 && n <= p.Page+2) {
			if last != 0 && n > last+1 {
				pg.Numbers = append(pg.Numbers, 0)
			}
			pg.Numbers = append(pg.Numbers, n)
			last = n
		}
	}
	return pg
}

func pageParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return min(n, 1_000_000)
}

type historyData struct {
	Deposits  []*pigp.Deposit
	Downloads []*pigp.Download
	Pager     pager
	Total     int64
	Months    int
}

func (s *Server) depositHistory(w http.ResponseWriter, r *http.Request, sess *session) {
	p, err := s.Exchange.DepositHistory(r.Context(), callerFor(r, sess), pageParam(r))
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, r, sess, http.StatusOK, "historique-depots.html", &page{Title: "Historique des dépôts", Nav: "historique-depots",
		Data: historyData{Deposits: p.Deposits, Pager: newPager("/apa/historique-depots", p), Total: p.Total, Months: p.Months}})
}

func (s *Server) downloadHistory(w http.ResponseWriter, r *http.Request, sess *session) {
	p, err := s.Exchange.DownloadHistory(r.Context(), callerFor(r, sess), pageParam(r))
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, r, sess, http.StatusOK, "historique-retraits.html", &page{Title: "Historique des retraits", Nav: "historique-retraits",
		Data: historyData{Downloads: p.Downloads, Pager: newPager("/apa/historique-retraits", p), Total: p.Total, Months: p.Months}})
}

// historyFile sends depots.csv or retraits.csv, the files an auditor opens
// in a spreadsheet (UTF-8 with a byte-order mark, contract §7).
func (s *Server) historyFile(w http.ResponseWriter, r *http.Request, sess *session) {
	var data []byte
	var err error
	switch name := r.PathValue("file"); name {
	case pigp.DepositsCSV:
		data, err = s.Exchange.DepositsCSV(r.Context(), callerFor(r, sess))
	case pigp.DownloadsCSV:
		data, err = s.Exchange.DownloadsCSV(r.Context(), callerFor(r, sess))
	default:
		err = errNotFound
	}
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", r.PathValue("file")))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}
