package exchange

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

// AuditHeader is the header of the audit export, the auditors' CSV of the
// audit trail (`pigp audit export` and the auditeurs' portal page): ";",
// CRLF, UTF-8 with a byte-order mark and ISO 8601 times with the Paris
// offset, like the history files of contract §7.
var AuditHeader = []string{"numero", "horodatage", "action", "resultat", "identifiant", "siret", "adresse_ip",
	"protocole", "objet", "sha256", "detail", "empreinte_precedente", "empreinte"}

// AuditCSV writes the audit export one row at a time: the one writer of
// that file, for the operator's CLI and the portal alike. Rows go out in
// chunks as they are written (nothing is held but the CSV writer's
// buffer).
type AuditCSV struct {
	cw   *csv.Writer
	rows int
}

// NewAuditCSV writes the byte-order mark and the header to w.
func NewAuditCSV(w io.Writer) (*AuditCSV, error) {
	if _, err := io.WriteString(w, BOM); err != nil {
		return nil, err
	}
	cw := csv.NewWriter(w)
	cw.Comma = ';'
	cw.UseCRLF = true
	if err := cw.Write(AuditHeader); err != nil {
		return nil, err
	}
	return &AuditCSV{cw: cw}, nil
}

// Write writes one row; an error of the underlying writer (a client gone)
// is returned once the buffer is flushed to it.
func (a *AuditCSV) Write(e *pigp.AuditEvent) error {
	a.rows++
	return a.cw.Write([]string{fmt.Sprint(e.ID), e.Time.In(apa.Paris).Format("2006-01-02T15:04:05.000000-07:00"), e.Action, e.Outcome,
		csvSafe(e.Login), e.SIRET, e.IP, e.Protocol, csvSafe(e.Object), e.SHA256, csvSafe(e.Detail), e.PrevHash, e.Hash})
}

// Flush writes what is buffered and returns the first error met.
func (a *AuditCSV) Flush() error {
	a.cw.Flush()
	return a.cw.Error()
}

// Rows is the number of rows written, the header excluded.
func (a *AuditCSV) Rows() int { return a.rows }

// csvSafe keeps a spreadsheet from reading a client-chosen value as a
// formula (CSV injection): such values get a leading apostrophe.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// AuditExportName is the file name of an auditeur's export of the period
// [from, to[ (days in Paris time; an open start is "origine", an open end
// the day of now).
func AuditExportName(from, to, now time.Time) string {
	first := "origine"
	if !from.IsZero() {
		first = from.In(apa.Paris).Format("2006-01-02")
	}
	last := now
	if !to.IsZero() {
		last = to.Add(-time.Nanosecond)
	}
	return "journal-audit_" + first + "_" + last.In(apa.Paris).Format("2006-01-02") + ".csv"
}

// Messages of the auditeurs' export.
var (
	errAuditExportForbidden = pigp.Errorf(pigp.EFORBIDDEN, "%s", pigp.MsgAuditExportReserved)
	errAuditExportPeriod    = pigp.Errorf(pigp.EINVALID, "Période invalide : la date de début doit précéder la date de fin.")
)

// AuditExport writes to w the audit export of the SIRETs the caller audits
// (Caller.AuditedSIRETs): the rows of the audit trail that name one of
// them, time in [from, to[ (a zero bound is open), in chain order, in the
// format of `pigp audit export`. The rows are streamed from the store a
// window of ids at a time.
//
// Only an auditeur exports: any other caller gets EFORBIDDEN, audited as a
// refusal. The export itself is recorded (who, which SIRETs, the period)
// before anything is read, and fails closed: without its audit row nothing
// is exported (EUNAVAILABLE). That row is thus part of an export whose
// period includes now. Nothing is written to w until the checks have
// passed and the row is recorded, so an error returned with nothing
// written can still be answered with a page; an error of w or of the
// store while writing ends the export (the rows written are returned).
func (s *Service) AuditExport(ctx context.Context, caller *pigp.Caller, from, to time.Time, w io.Writer) (int, error) {
	sirets := caller.AuditedSIRETs()
	ev := &pigp.AuditEvent{Action: pigp.AuditExport, Object: AuditExportName(from, to, s.now()),
		Detail: "export du journal d'audit, " + auditPeriod(from, to)}
	if len(sirets) == 0 {
		ev.Outcome, ev.Detail = pigp.AuditRefused, ev.Detail+" : profil auditeur requis"
		s.audit(ctx, caller, ev)
		s.Logger.Info("audit export refused: not an auditeur", "login", caller.Login, "ip", caller.RemoteIP)
		return 0, errAuditExportForbidden
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return 0, errAuditExportPeriod
	}
	ev.Outcome, ev.SIRET = pigp.AuditOK, strings.Join(sirets, ",")
	if err := s.audit(ctx, caller, ev); err != nil {
		return 0, unavailable(err)
	}
	out, err := NewAuditCSV(w)
	if err != nil {
		return 0, err
	}
	err = s.Store.EachAudit(ctx, pigp.AuditFilter{From: from, To: to, SIRETs: sirets}, out.Write)
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		s.Logger.Warn("audit export interrupted", "login", caller.Login, "siret", ev.SIRET, "events", out.Rows(), "error", err)
		return out.Rows(), err
	}
	s.Logger.Info("audit exported", "login", caller.Login, "ip", caller.RemoteIP, "protocol", caller.Protocol,
		"siret", ev.SIRET, "events", out.Rows())
	return out.Rows(), nil
}

// auditPeriod writes [from, to[ for the export's audit row.
func auditPeriod(from, to time.Time) string {
	const layout = "2006-01-02T15:04:05-07:00"
	first, last := "depuis l'origine du journal", "jusqu'à l'export"
	if !from.IsZero() {
		first = "du " + from.In(apa.Paris).Format(layout) + " (inclus)"
	}
	if !to.IsZero() {
		last = "au " + to.In(apa.Paris).Format(layout) + " (exclu)"
	}
	return "période " + first + " " + last
}
