package exchange

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

// ValidFileName reports whether name is safe as a file name in /retrait:
// 1 to 255 characters among letters, digits, '.', '_' and '-', not starting
// with a dot.
func ValidFileName(name string) bool {
	if name == "" || len(name) > 255 || name[0] == '.' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Publish stores r as a file of siret's /retrait named name, available now
// and until the retention period ends. depositID is the call it answers, or
// "" for a file published by an operator. The audit rows given, if any,
// are recorded in the transaction that records the file.
func (s *Service) Publish(ctx context.Context, siret, name, docType, depositID string, r io.Reader, audit ...*pigp.AuditEvent) (*pigp.Response, error) {
	if err := pigp.ValidateSIRET(siret); err != nil {
		return nil, err
	}
	if !ValidFileName(name) {
		return nil, pigp.Errorf(pigp.EINVALID, "nom de fichier %q refusé : lettres, chiffres, '.', '_' et '-' seulement", name)
	}
	if docType != pigp.DocResponse && docType != pigp.DocReport {
		return nil, pigp.Errorf(pigp.EINVALID, "type de document %q inconnu", docType)
	}
	id := pigp.NewID()
	resp := &pigp.Response{ID: id, Name: name, SIRET: siret, DocType: docType, DepositID: depositID,
		State: pigp.ResponseAvailable, StorageKey: blob.Key(blob.KindResponse, id)}
	err := blob.Publish(ctx, s.Blobs, s.Spool, resp.StorageKey, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	}, func(size int64, sum string) error {
		now := s.now()
		resp.Size, resp.SHA256 = size, sum
		resp.AvailableAt, resp.ExpiresAt = now, now.Add(s.Retention)
		return s.Store.CreateResponse(ctx, resp, audit...)
	})
	if err != nil {
		s.Logger.Error("publish response", "name", name, "siret", siret, "key", resp.StorageKey, "error", err)
		return nil, err
	}
	s.Logger.Info("response published", "response", id, "name", name, "siret", siret, "size", resp.Size, "expires", resp.ExpiresAt)
	return resp, nil
}

// Responses returns the files of the caller's /retrait, newest first: those
// of the SIRETs it acts for (an auditeur retrieves nothing).
func (s *Service) Responses(ctx context.Context, caller *pigp.Caller) ([]*pigp.Response, error) {
	sirets := caller.ActingSIRETs()
	if len(sirets) == 0 {
		return nil, nil
	}
	return s.Store.ListAvailableResponses(ctx, sirets, s.now())
}

// response returns the available file named name of the caller's
// /retrait, for action (a download or a removal). A file of a SIRET the
// caller only reads as an auditeur is refused (EFORBIDDEN, said and
// audited): reading it would record a download.
func (s *Service) response(ctx context.Context, caller *pigp.Caller, name, action string) (*pigp.Response, error) {
	resp, err := s.Store.FindAvailableResponse(ctx, caller.SIRETs, name, s.now())
	if err != nil {
		return nil, err
	}
	if err := s.mayActFor(caller, resp.SIRET, "retrait refusé : le compte %s n'est pas habilité pour le SIRET %s"); err != nil {
		s.audit(ctx, caller, &pigp.AuditEvent{Action: action, Outcome: pigp.AuditRefused, Object: resp.Name,
			SIRET: resp.SIRET, Detail: pigp.ErrorMessage(err)})
		return nil, err
	}
	return resp, nil
}

// mayActFor returns nil when the caller acts for siret, the auditeur's
// refusal when it only reads it, and otherwise EFORBIDDEN with notMine
// (formatted with the login and the SIRET). It is the one check of the
// auditeur's role, for SFTP and the portal alike.
func (s *Service) mayActFor(caller *pigp.Caller, siret, notMine string) error {
	switch {
	case caller.MayActFor(siret):
		return nil
	case caller.MayRead(siret):
		return pigp.Errorf(pigp.EFORBIDDEN, pigp.MsgAuditorReadOnly, siret)
	}
	return pigp.Errorf(pigp.EFORBIDDEN, notMine, caller.Login, siret)
}

// ResponseReader reads a response. Closing it records the download when the
// reader served the whole file.
type ResponseReader struct {
	svc     *Service
	caller  *pigp.Caller
	resp    *pigp.Response
	f       blob.Object
	release func() // gives the descriptor back

	mu      sync.Mutex
	covered int64 // bytes [0, covered) were served
	extents map[int64]int64
	closed  bool
}

// OpenResponse opens the caller's file named name for reading.
func (s *Service) OpenResponse(ctx context.Context, caller *pigp.Caller, name string) (*ResponseReader, error) {
	resp, err := s.response(ctx, caller, name, pigp.AuditDownload)
	if err != nil {
		return nil, err
	}
	release, err := s.holdFile()
	if err != nil {
		return nil, err
	}
	f, err := s.Blobs.Open(ctx, resp.StorageKey)
	if err != nil {
		release()
		err = fmt.Errorf("open response %s: %w", resp.ID, err)
		if pigp.ErrorCode(err) == pigp.ENOTFOUND {
			// The row says the file is there: its content missing is the
			// server's fault, not the client's "no such file".
			err = pigp.WrapError(pigp.EINTERNAL, "", err)
		}
		return nil, err
	}
	return &ResponseReader{svc: s, caller: caller, resp: resp, f: f, release: release, extents: map[int64]int64{}}, nil
}

// Response returns the file being read.
func (rr *ResponseReader) Response() *pigp.Response { return rr.resp }

// ReadAt implements io.ReaderAt. It records which bytes were served, in any
// order and with overlaps, so that Close knows whether the whole file went out.
func (rr *ResponseReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pigp.Errorf(pigp.EINVALID, "Lecture refusée : position %d invalide (négative)", off)
	}
	if off >= rr.resp.Size {
		return 0, io.EOF // never off+len(p) past an int64
	}
	n, err := rr.f.ReadAt(p, off)
	if err == io.EOF && n < len(p) && off+int64(n) < rr.resp.Size {
		// The object is shorter than its row says: damaged, never served
		// as a complete file.
		err = fmt.Errorf("response %s: content ends at %d bytes, recorded size %d", rr.resp.ID, off+int64(n), rr.resp.Size)
	}
	if n > 0 {
		rr.mu.Lock()
		rr.served(off, off+int64(n))
		rr.mu.Unlock()
	}
	return n, err
}

// served adds [start, end) to what was served: the prefix [0, covered)
// grows, and ranges beyond it wait in extents until the prefix reaches them.
func (rr *ResponseReader) served(start, end int64) {
	if start > rr.covered {
		if len(rr.extents) < 4096 {
			rr.extents[start] = max(rr.extents[start], end)
		}
		return
	}
	rr.covered = max(rr.covered, end)
	for grown := true; grown; {
		grown = false
		for s, e := range rr.extents {
			if s <= rr.covered {
				delete(rr.extents, s)
				if e > rr.covered {
					rr.covered = e
				}
				grown = true
			}
		}
	}
}

// Read implements io.Reader, for sequential consumers such as the portal.
func (rr *ResponseReader) Read(p []byte) (int, error) {
	rr.mu.Lock()
	off := rr.covered
	rr.mu.Unlock()
	return rr.ReadAt(p, off)
}

// Complete reports whether every byte was served.
func (rr *ResponseReader) Complete() bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.covered >= rr.resp.Size
}

// Close closes the file and, if it was read to the end, records the
// download (and the first-download date).
func (rr *ResponseReader) Close() error {
	rr.mu.Lock()
	if rr.closed {
		rr.mu.Unlock()
		return nil
	}
	rr.closed = true
	rr.mu.Unlock()
	rr.f.Close()
	rr.release()
	if !rr.Complete() {
		return nil
	}
	s := rr.svc
	d := &pigp.Download{
		ResponseID: rr.resp.ID, ResponseName: rr.resp.Name, DocType: rr.resp.DocType, Size: rr.resp.Size,
		SIRET: rr.resp.SIRET, AccountID: rr.caller.AccountID, Login: rr.caller.Login,
		Protocol: rr.caller.Protocol, ClientIP: rr.caller.RemoteIP, DownloadedAt: s.now(),
	}
	ev := s.event(rr.caller, &pigp.AuditEvent{Action: pigp.AuditDownload, Outcome: pigp.AuditOK, Object: d.ResponseName,
		SIRET: d.SIRET, SHA256: rr.resp.SHA256, Detail: "réponse " + d.ResponseID})
	if err := s.Store.RecordDownload(context.Background(), d, ev...); err != nil {
		s.Logger.Error("record download", "response", d.ResponseID, "login", d.Login, "error", err)
		return fmt.Errorf("record download: %w", err)
	}
	if s.Metrics != nil {
		s.Metrics.Download()
	}
	s.Logger.Info("response downloaded", "response", d.ResponseID, "name", d.ResponseName, "siret", d.SIRET,
		"login", d.Login, "ip", d.ClientIP, "protocol", d.Protocol)
	return nil
}

// RemoveResponse hides the caller's file named name and deletes its
// content. It is allowed only after the file was downloaded at least once;
// the history keeps it.
func (s *Service) RemoveResponse(ctx context.Context, caller *pigp.Caller, name string) error {
	resp, err := s.response(ctx, caller, name, pigp.AuditRemove)
	if err != nil {
		return err
	}
	ev := s.event(caller, &pigp.AuditEvent{Action: pigp.AuditRemove, Outcome: pigp.AuditOK, Object: resp.Name,
		SIRET: resp.SIRET, SHA256: resp.SHA256, Detail: "réponse " + resp.ID})
	if err := s.Store.MarkResponseRemoved(ctx, resp.ID, s.now(), ev...); err != nil {
		return err
	}
	if err := s.Blobs.Remove(context.WithoutCancel(ctx), resp.StorageKey); err != nil {
		// The row already hides the file; housekeeping removes orphans.
		s.Logger.Error("delete removed response content", "response", resp.ID, "error", err)
	}
	s.Logger.Info("response removed", "response", resp.ID, "name", resp.Name, "siret", resp.SIRET,
		"login", caller.Login, "ip", caller.RemoteIP)
	return nil
}

// FormatSize writes a size as the portal does: o, Ko, Mo, Go, with a
// French decimal comma (1,5 Mo).
func FormatSize(n int64) string {
	const unit = 1024
	switch {
	case n < unit:
		return fmt.Sprintf("%d o", n)
	case n < unit*unit:
		return fmt.Sprintf("%d Ko", (n+unit-1)/unit)
	case n < unit*unit*unit:
		return decimalComma(fmt.Sprintf("%.1f Mo", float64(n)/(unit*unit)))
	default:
		return decimalComma(fmt.Sprintf("%.1f Go", float64(n)/(unit*unit*unit)))
	}
}

// decimalComma turns "1.5 Mo" into "1,5 Mo" and "100.0 Mo" into "100 Mo".
func decimalComma(s string) string {
	return strings.Replace(strings.Replace(s, ".0 ", " ", 1), ".", ",", 1)
}
