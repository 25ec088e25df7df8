package apa_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/apa"
)

// defaultCallName is the call name of corpus files unless the manifest
// says otherwise.
const defaultCallName = "2026_22940028800010_20261128101500.xml"

// corpusCase is one line of testdata/manifest.txt.
type corpusCase struct {
	File      string
	Xmllint   string   // valid or invalid
	Codes     []string // sorted; nil for none
	CallName  string
	BeyondXSD bool // rejected with a schema-level code that xmllint accepts
}

func readManifest(tb testing.TB) []corpusCase {
	tb.Helper()
	f, err := os.Open("testdata/manifest.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []corpusCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3 || fields[1] != "valid" && fields[1] != "invalid" {
			tb.Fatalf("manifest.txt:%d: want: file valid|invalid codes [options]", n)
		}
		c := corpusCase{File: fields[0], Xmllint: fields[1], CallName: defaultCallName}
		if fields[2] != "-" {
			c.Codes = strings.Split(fields[2], ",")
			slices.Sort(c.Codes)
		}
		for _, opt := range fields[3:] {
			switch {
			case strings.HasPrefix(opt, "name="):
				c.CallName = strings.TrimPrefix(opt, "name=")
			case opt == "beyond-xsd":
				c.BeyondXSD = true
			default:
				tb.Fatalf("manifest.txt:%d: unknown option %q", n, opt)
			}
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return cases
}

// openCorpus opens a corpus file, decompressing .gz files.
func openCorpus(tb testing.TB, file string) io.ReadCloser {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.HasSuffix(file, ".gz") {
		return f
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}
}

// corpusPath returns a path to the plain (decompressed) corpus file.
func corpusPath(tb testing.TB, file string) string {
	tb.Helper()
	if !strings.HasSuffix(file, ".gz") {
		return filepath.Join("testdata", file)
	}
	rc := openCorpus(tb, file)
	defer rc.Close()
	path := filepath.Join(tb.TempDir(), strings.TrimSuffix(filepath.Base(file), ".gz"))
	out, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// testPlaces is a tiny Places for the corpus.
type testPlaces struct{}

var _ apa.Places = testPlaces{}

func (testPlaces) KnownCommune(code string) bool {
	switch code {
	case "94028", "75056", "94080", "2A004", "13055":
		return true
	}
	return false
}

func (testPlaces) KnownCountry(code string) bool {
	switch code {
	case "99350", "99134", "99109":
		return true
	}
	return false
}

func (testPlaces) PostalCodeMatches(postal, commune string) bool {
	want := map[string]string{
		"94000": "CRETEIL", "75011": "PARIS", "75014": "PARIS",
		"94300": "VINCENNES", "20000": "AJACCIO", "13001": "MARSEILLE",
	}[postal]
	return want != "" && apa.NormalizeName(commune) == want
}

// corpusOptions are the options the corpus is validated with: campaign
// windows enforced, deposit on 28 November 2026.
func corpusOptions() apa.Options {
	return apa.Options{
		Places: testPlaces{},
		Windows: []apa.Window{
			{Campaign: 2025, Open: time.Date(2025, 9, 22, 0, 0, 0, 0, apa.Paris), Close: time.Date(2025, 12, 31, 23, 59, 59, 0, apa.Paris)},
			{Campaign: 2026, Open: time.Date(2026, 9, 21, 0, 0, 0, 0, apa.Paris), Close: time.Date(2026, 12, 31, 23, 59, 59, 0, apa.Paris)},
		},
		DepositedAt: time.Date(2026, 11, 28, 11, 0, 0, 0, apa.Paris),
	}
}

// validateCorpus validates one corpus file and returns the report and the
// records visited.
func validateCorpus(tb testing.TB, c corpusCase) (*apa.Report, []apa.Demande) {
	tb.Helper()
	rc := openCorpus(tb, c.File)
	defer rc.Close()
	var visited []apa.Demande
	rep, err := apa.Validate(rc, mustName(tb, c.CallName), corpusOptions(), func(d apa.Demande) error {
		if len(visited) < 100 {
			visited = append(visited, d)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("%s: Validate: %v", c.File, err)
	}
	return rep, visited
}

func sortedCodes(rep *apa.Report) []string {
	codes := rep.Codes()
	slices.Sort(codes)
	return codes
}

// schemaCodes are the codes whose rule DemandeAPA.xsd expresses, or that
// make xmllint fail (malformed, badly encoded or empty input).
var schemaCodes = []string{apa.CodeMalformed, apa.CodeEncoding, apa.CodeSchema, apa.CodeTooMany, apa.CodeDuplicateRef, apa.CodeEmpty}

func schemaInvalid(codes []string) bool {
	for _, c := range codes {
		if slices.Contains(schemaCodes, c) {
			return true
		}
	}
	return false
}

func TestCorpus(t *testing.T) {
	cases := readManifest(t)
	if len(cases) < 40 {
		t.Errorf("got %d corpus files, want at least 40", len(cases))
	}
	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			rep, visited := validateCorpus(t, c)
			got := sortedCodes(rep)
			if !slices.Equal(got, c.Codes) {
				t.Errorf("got codes %v, want %v; anomalies:\n%s", got, c.Codes, dump(rep))
			}
			if !rep.Rejected() && rep.Demandes > 0 && len(visited) != min(rep.Demandes, 100) {
				t.Errorf("visited %d records, want %d", len(visited), rep.Demandes)
			}
			for _, a := range rep.Anomalies {
				if a.Label == "" || a.Line == 0 && a.Code != apa.CodeEmpty {
					t.Errorf("anomaly without label or line: %+v", a)
				}
			}
		})
		for _, code := range c.Codes {
			covered[code] = true
		}
	}
	for _, code := range []string{"E001", "E002", "E003", "E004", "E005", "E006", "E007", "E008", "E009", "E010", "R101", "R102", "R103"} {
		if !covered[code] {
			t.Errorf("no corpus file for %s", code)
		}
	}
}

// TestCorpusFiles checks that the manifest lists every corpus file.
func TestCorpusFiles(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range readManifest(t) {
		if listed[c.File] {
			t.Errorf("%s listed twice", c.File)
		}
		listed[c.File] = true
	}
	files, _ := filepath.Glob("testdata/*.xml*")
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s is not in testdata/manifest.txt", f)
		}
	}
}

// xmllint returns the path of xmllint. Without it the test fails when
// CI=true and is skipped otherwise.
func xmllint(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("xmllint is required in CI (Debian package libxml2-utils)")
		}
		tb.Skip("xmllint not found (Debian package libxml2-utils)")
	}
	return path
}

// xmllintValid runs xmllint on file against schema and reports whether the
// file is valid, with xmllint's messages.
func xmllintValid(tb testing.TB, bin, schema, file string) (bool, string) {
	tb.Helper()
	out, err := exec.Command(bin, "--noout", "--nonet", "--schema", schema, file).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			tb.Fatalf("run xmllint: %v", err)
		}
		return false, string(out)
	}
	return true, string(out)
}

// TestCorpusAgreesWithXmllint checks every corpus file with xmllint and
// DemandeAPA.xsd: xmllint's verdict must be the manifest's, and our
// schema-level verdict must be xmllint's, except for files marked
// beyond-xsd (DTD, encodings xmllint reads but the contract refuses).
func TestCorpusAgreesWithXmllint(t *testing.T) {
	bin := xmllint(t)
	schema := filepath.Join("xsd", apa.SchemaRequest)
	for _, c := range readManifest(t) {
		t.Run(c.File, func(t *testing.T) {
			valid, out := xmllintValid(t, bin, schema, corpusPath(t, c.File))
			got := "invalid"
			if valid {
				got = "valid"
			}
			if got != c.Xmllint {
				t.Errorf("xmllint: got %s, want %s\n%s", got, c.Xmllint, out)
			}
			switch ours := schemaInvalid(c.Codes); {
			case c.BeyondXSD && (!valid || !ours):
				t.Errorf("beyond-xsd: got xmllint valid=%v and our schema-level rejection=%v, want true and true", valid, ours)
			case !c.BeyondXSD && ours == valid:
				t.Errorf("got our schema-level rejection=%v with xmllint valid=%v, want them to disagree never\n%s", ours, valid, out)
			}
		})
	}
}

func dump(rep *apa.Report) string {
	var b bytes.Buffer
	for _, a := range rep.Anomalies {
		b.WriteString("\t" + a.Code + " " + a.Path + " l." + strconv.Itoa(a.Line) + " : " + a.Label + "\n")
	}
	return b.String()
}
