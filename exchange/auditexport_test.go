package exchange_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
)

// readAuditCSV parses an audit export: the byte-order mark, the header,
// then the rows.
func readAuditCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	body, ok := bytes.CutPrefix(b, []byte(exchange.BOM))
	if !ok {
		t.Fatalf("no byte-order mark: %q", b[:min(len(b), 16)])
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.Comma = ';'
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || !slices.Equal(rows[0], exchange.AuditHeader) || !bytes.Contains(body, []byte("\r\n")) {
		t.Fatalf("header: %q", rows)
	}
	return rows[1:]
}

type failingAuditor struct{}

func (failingAuditor) Audit(context.Context, *pigp.AuditEvent) error {
	return errors.New("audit trail unreachable")
}

// TestAuditExport: an auditeur exports the audit trail of the SIRETs it
// audits, and of those only (not those it holds as agent, not another
// organisation's), over a period; the export is audited itself, first;
// any other caller is refused and audited; without its audit row nothing
// is exported.
func TestAuditExport(t *testing.T) {
	e, _, _ := directoryEnv(t) // sophie.leroy: auditeur of siretA, agent of siretB
	e.svc.Audit = e.db
	ctx := context.Background()
	deposit := func(c *pigp.Caller, siret string) string {
		t.Helper()
		name := callName(siret, e.now)
		up, err := e.svc.BeginDeposit(ctx, c, name)
		if err != nil {
			t.Fatal(err)
		}
		up.WriteAt([]byte("<appel/>"), 0)
		if _, err := up.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return name
	}
	nameA := deposit(e.callerA(), siretA)
	nameB := deposit(e.callerB(), siretB)
	e.now = e.now.Add(time.Hour)
	sophie, err := e.svc.Login(ctx, "192.0.2.40", "sophie.leroy", agentPassword, pigp.ProtocolHTTPS)
	if err != nil {
		t.Fatal(err)
	}
	if got := sophie.AuditedSIRETs(); !slices.Equal(got, []string{siretA}) {
		t.Fatalf("AuditedSIRETs = %v", got)
	}
	nameB2 := deposit(sophie, siretB) // as the agent of siretB
	e.now = e.now.Add(time.Hour)

	var buf bytes.Buffer
	n, err := e.svc.AuditExport(ctx, sophie, winter.Add(-24*time.Hour), winter.Add(24*time.Hour), &buf)
	if err != nil {
		t.Fatal(err)
	}
	rows := readAuditCSV(t, buf.Bytes())
	if n != len(rows) || n < 3 {
		t.Fatalf("%d rows said, %d written:\n%s", n, len(rows), buf.String())
	}
	all := buf.String()
	for _, r := range rows {
		if !slices.Contains(strings.Split(r[5], ","), siretA) {
			t.Fatalf("a row of another SIRET in the export: %q", r)
		}
	}
	if !strings.Contains(all, nameA) || strings.Contains(all, nameB) || strings.Contains(all, nameB2) || strings.Contains(all, "agent-b") {
		t.Fatalf("the export holds another SIRET's rows, or lacks siretA's deposit:\n%s", all)
	}
	last := rows[len(rows)-1]
	if last[2] != pigp.AuditExport || last[3] != pigp.AuditOK || last[4] != "sophie.leroy" || last[5] != siretA ||
		last[6] != "192.0.2.40" || last[7] != pigp.ProtocolHTTPS || last[8] != "journal-audit_2026-11-27_2026-11-29.csv" ||
		!strings.Contains(last[10], "période du 2026-11-27T12:00:00+01:00 (inclus) au 2026-11-29T12:00:00+01:00 (exclu)") {
		t.Fatalf("the export's own row: %q", last)
	}
	stored, err := e.db.ListAudit(ctx, pigp.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	exports := slices.DeleteFunc(slices.Clone(stored), func(ev *pigp.AuditEvent) bool { return ev.Action != pigp.AuditExport })
	if len(exports) != 1 || exports[0].Login != "sophie.leroy" || exports[0].Hash != last[12] {
		t.Fatalf("export rows in the trail: %+v", exports)
	}

	// A period: the deposit before it is left out, the export rows are in.
	buf.Reset()
	if _, err := e.svc.AuditExport(ctx, sophie, winter.Add(30*time.Minute), time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	rows = readAuditCSV(t, buf.Bytes())
	if strings.Contains(buf.String(), nameA) || len(rows) < 3 || rows[len(rows)-1][2] != pigp.AuditExport ||
		!strings.Contains(rows[len(rows)-1][10], "jusqu'à l'export") {
		t.Fatalf("export from %s on:\n%s", winter.Add(30*time.Minute), buf.String())
	}
	buf.Reset()
	if _, err := e.svc.AuditExport(ctx, sophie, winter, winter, &buf); pigp.ErrorCode(err) != pigp.EINVALID || buf.Len() != 0 {
		t.Fatalf("empty period: %v, %d bytes written", err, buf.Len())
	}

	// Anyone else is refused, audited, and gets nothing.
	jean, err := e.svc.Login(ctx, "192.0.2.41", "jean.dupont", agentPassword, pigp.ProtocolHTTPS)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pigp.Caller{jean, e.callerA(), {Login: "forged", SIRETs: []string{siretA},
		Grants: []pigp.Grant{{SIRET: siretA, Role: pigp.RoleAuditeur}}}} { // grants without the directory's source
		_, err := e.svc.AuditExport(ctx, c, time.Time{}, time.Time{}, &buf)
		if pigp.ErrorCode(err) != pigp.EFORBIDDEN || !strings.Contains(pigp.ErrorMessage(err), "réservé au profil auditeur") || buf.Len() != 0 {
			t.Fatalf("export by %s: %v, %d bytes", c.Login, err, buf.Len())
		}
	}
	stored, _ = e.db.ListAudit(ctx, pigp.AuditFilter{})
	var refused []string
	for _, ev := range stored {
		if ev.Action == pigp.AuditExport && ev.Outcome == pigp.AuditRefused {
			refused = append(refused, ev.Login)
		}
	}
	if strings.Join(refused, ",") != "jean.dupont,agent-a,forged" {
		t.Fatalf("refused exports audited: %q", refused)
	}
	if rep, err := e.db.VerifyAudit(ctx); err != nil || !rep.OK() {
		t.Fatalf("chain after the exports: %+v, %v", rep, err)
	}

	// Fail closed: without its audit row, no export.
	e.svc.Audit = failingAuditor{}
	if _, err := e.svc.AuditExport(ctx, sophie, time.Time{}, time.Time{}, &buf); pigp.ErrorCode(err) != pigp.EUNAVAILABLE || buf.Len() != 0 {
		t.Fatalf("export without its audit row: %v, %d bytes", err, buf.Len())
	}
}

// TestAuditCSVSafe: values a client chose cannot be read as formulas.
func TestAuditCSVSafe(t *testing.T) {
	var buf bytes.Buffer
	w, err := exchange.NewAuditCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(&pigp.AuditEvent{ID: 7, Time: winter, Action: pigp.AuditUploadRefused, Outcome: pigp.AuditRefused,
		Login: "=cmd|' /C calc'!A0", Object: "+SUM(A1)", Detail: "@x", SIRET: siretA})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rows := readAuditCSV(t, buf.Bytes())
	if len(rows) != 1 || rows[0][0] != "7" || rows[0][1] != "2026-11-28T12:00:00.000000+01:00" ||
		rows[0][4] != "'=cmd|' /C calc'!A0" || rows[0][8] != "'+SUM(A1)" || rows[0][10] != "'@x" || w.Rows() != 1 {
		t.Fatalf("rows: %q", rows)
	}
}
