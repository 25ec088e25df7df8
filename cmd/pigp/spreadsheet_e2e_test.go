package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
)

const utf8BOM = "\xef\xbb\xbf"

var (
	depotsHeader   = []string{"nom_externe", "nom_interne", "date_depot", "taille", "identifiant_depot", "statut", "sha256"}
	retraitsHeader = []string{"nom_fichier", "type_document", "taille", "date_telechargement", "identifiant", "protocole", "adresse_ip"}
)

// TestHistorySpreadsheets checks the files auditors open in a spreadsheet:
// depots.csv and retraits.csv over SFTP and from the portal, and the audit
// export. Each begins with the UTF-8 byte-order mark; Python's csv module
// and LibreOffice Calc (headless, with ";" as separator, as chosen in its
// import dialog, and the system's UTF-8 character set) read the same rows
// as the contract's: 7 columns (13 for the audit), headers without a stray
// mark, accents intact.
func TestHistorySpreadsheets(t *testing.T) {
	needTool(t, "python3", "soffice")
	e, base := startWebEnv(t, "sqlite")
	ctx := context.Background()
	c, _ := e.dialSFTP("alice-xt", e.alice)
	p := newPortal(t, base)
	p.login("alice-xt", e.alice)

	// A deposit over SFTP, a response downloaded over SFTP and a rejection
	// report downloaded on the portal (plain HTTP here).
	f, err := c.Create("/depot/" + callName(siretA, 1))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("<DemandeAPA/>"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	resp := e.publish(siretA, "2026_"+siretA+"_20261128101500_REP.xml", []byte("<ReponseAPA/>"))
	report, err := e.app.Exchange.Publish(ctx, siretA, "2026_"+siretA+"_20261128101501_REP.xml", pigp.DocReport, "",
		strings.NewReader("<CompteRenduAPA/>"))
	if err != nil {
		t.Fatal(err)
	}
	readSFTP(t, c, "/retrait/"+resp.Name)
	if status, _ := p.get("/apa/retrait/" + report.Name); status != 200 {
		t.Fatalf("portal download: %d", status)
	}

	dir := t.TempDir()
	files := map[string][]string{} // file → expected header
	write := func(name string, data []byte, header []string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = header
	}
	for _, h := range []struct {
		file   string
		header []string
	}{{"depots.csv", depotsHeader}, {"retraits.csv", retraitsHeader}} {
		overSFTP := readSFTP(t, c, "/historique/"+h.file)
		status, fromPortal := p.get("/apa/historique/" + h.file)
		if status != 200 || fromPortal != overSFTP {
			t.Fatalf("portal %s: %d, %q; over SFTP %q", h.file, status, fromPortal, overSFTP)
		}
		write("sftp-"+h.file, []byte(overSFTP), h.header)
		write("portail-"+h.file, []byte(fromPortal), h.header)
	}
	auditFile := filepath.Join(dir, "audit.csv")
	if code, out := e.cli(t, "audit", "export", "--out", auditFile); code != 0 {
		t.Fatalf("audit export: %d %s", code, out)
	}
	files["audit.csv"] = exchange.AuditHeader

	// The rows as the contract defines them (Go's RFC 4180 reader).
	want := map[string][][]string{}
	for name, header := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		body, ok := bytes.CutPrefix(b, []byte(utf8BOM))
		if !ok {
			t.Fatalf("%s does not begin with the UTF-8 byte-order mark: %q", name, b[:min(len(b), 16)])
		}
		cr := csv.NewReader(bytes.NewReader(body))
		cr.Comma = ';'
		rows, err := cr.ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(rows[0], header) || len(rows) < 2 {
			t.Fatalf("%s: header %q, %d rows", name, rows[0], len(rows))
		}
		want[name] = rows
	}
	retraits := want["sftp-retraits.csv"]
	if len(retraits) != 3 || !slices.ContainsFunc(retraits, func(r []string) bool { return r[1] == pigp.DocResponse && r[5] == pigp.ProtocolSFTP }) ||
		!slices.ContainsFunc(retraits, func(r []string) bool { return r[1] == pigp.DocReport && r[5] == pigp.ProtocolHTTP }) {
		t.Fatalf("retraits.csv: %q", retraits)
	}
	if !slices.ContainsFunc(want["audit.csv"], func(r []string) bool { return strings.Contains(strings.Join(r, ";"), "réponse") }) {
		t.Fatalf("the audit export has no accented text to check: %q", want["audit.csv"])
	}

	// Python's csv module, as an auditor's script reads a BOM file.
	script := `import csv, json, sys
out = {}
for name in sys.argv[1:]:
    with open(name, newline="", encoding="utf-8-sig") as f:
        out[name.rsplit("/", 1)[-1]] = list(csv.reader(f, delimiter=";"))
json.dump(out, sys.stdout)
`
	args := []string{"-c", script}
	for name := range files {
		args = append(args, filepath.Join(dir, name))
	}
	out, err := exec.Command("python3", args...).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var fromPython map[string][][]string
	if err := json.Unmarshal(out, &fromPython); err != nil {
		t.Fatal(err)
	}
	for name, rows := range want {
		if !equalRows(fromPython[name], rows) {
			t.Errorf("python's csv reads %s as\n%q\nwant\n%q", name, fromPython[name], rows)
		}
	}

	// LibreOffice Calc: ";" as the separator, the system's character set
	// (UTF-8) and text columns (so that identifiers stay as written);
	// each file is written back as plain UTF-8 CSV and compared.
	//
	// Controls, made from the audit export, show what this comparison
	// can catch. A second byte-order mark is read as a stray character
	// in the first header: the comparison sees a mark LibreOffice would
	// leave. The file read as Windows-1252 (LibreOffice's character set
	// when none is chosen) has its accents garbled, BOM or not: the
	// comparison sees a wrong decoding. And the file without its mark
	// reads the same as with it: LibreOffice 7.4 takes the character set
	// chosen in its import dialog and never sniffs the mark (headless,
	// nor with an explicit set), so no LibreOffice run can show that
	// the mark is needed. The mark is for Excel, which reads a CSV
	// without one as Windows-1252; its presence is asserted above, on
	// the bytes.
	audit, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	controls := filepath.Join(dir, "temoins")
	for name, data := range map[string][]byte{
		"temoin-sans-bom.csv":   audit[len(utf8BOM):],
		"temoin-double-bom.csv": append([]byte(utf8BOM), audit...),
		"temoin-1252.csv":       audit,
	} {
		if err := os.MkdirAll(controls, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(controls, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lo := filepath.Join(dir, "libreoffice")
	cols := make([]string, 0, 2*len(exchange.AuditHeader))
	for i := range exchange.AuditHeader {
		cols = append(cols, fmt.Sprint(i+1), "2")
	}
	var paths []string
	for name := range files {
		paths = append(paths, filepath.Join(dir, name))
	}
	profile := "-env:UserInstallation=file://" + filepath.Join(t.TempDir(), "profile")
	soffice := func(charset string, paths ...string) {
		t.Helper()
		sargs := append([]string{profile, "--headless", "--infilter=CSV:59,34," + charset + ",1," + strings.Join(cols, "/"),
			"--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1", "--outdir", lo}, paths...)
		cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, "soffice", sargs...)
		cmd.Env = append(os.Environ(), "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("soffice: %v\n%s", err, out)
		}
	}
	soffice("SYSTEM", append(paths, filepath.Join(controls, "temoin-sans-bom.csv"), filepath.Join(controls, "temoin-double-bom.csv"))...)
	soffice("1", filepath.Join(controls, "temoin-1252.csv")) // RTL_TEXTENCODING_MS_1252
	readLO := func(name string) [][]string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(lo, name))
		if err != nil {
			t.Fatalf("LibreOffice did not convert %s: %v", name, err)
		}
		got, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("LibreOffice's %s: %v", name, err)
		}
		return got
	}
	for name, rows := range want {
		if got := readLO(name); !equalRows(got, rows) {
			t.Errorf("LibreOffice reads %s as\n%q\nwant\n%q", name, got, rows)
		}
	}
	if got := readLO("temoin-double-bom.csv"); equalRows(got, want["audit.csv"]) || got[0][0] != "\ufeff"+exchange.AuditHeader[0] {
		t.Errorf("control: a second mark is not seen as a stray character (first header %q)", got[0][0])
	}
	if got := readLO("temoin-1252.csv"); equalRows(got, want["audit.csv"]) || !strings.Contains(fmt.Sprint(got), "rÃ©ponse") {
		t.Errorf("control: read as Windows-1252, the accents are not garbled: %q", got)
	}
	if got := readLO("temoin-sans-bom.csv"); !equalRows(got, want["audit.csv"]) {
		t.Errorf("control: without its mark, LibreOffice reads the export otherwise (the mark matters to it after all):\n%q", got)
	}
}

func equalRows(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}
