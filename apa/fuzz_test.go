package apa_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/apa"
)

// FuzzValidate checks that Validate never panics nor hangs, that it reports
// every file it refuses with at least one anomaly, and that it is
// deterministic across read sizes. Seeds: the corpus (small files).
func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	ex, _ := filepath.Glob("testdata/exemples/*.xml")
	for _, path := range append(files, ex...) {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	name := mustName(f, defaultCallName)
	f.Fuzz(func(t *testing.T, data []byte) {
		visited := 0
		rep, err := apa.Validate(bytes.NewReader(data), name, corpusOptions(), func(d apa.Demande) error {
			visited++
			if d.Reference == "" || d.Index != visited {
				t.Errorf("visited record %d with index %d and reference %q", visited, d.Index, d.Reference)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if rep.Total < len(rep.Anomalies) || len(rep.Anomalies) > apa.MaxListedAnomalies {
			t.Fatalf("got %d listed of %d anomalies", len(rep.Anomalies), rep.Total)
		}
		for _, a := range rep.Anomalies {
			if a.Code == "" || a.Label == "" || a.Severity == "" {
				t.Fatalf("incomplete anomaly %+v", a)
			}
		}
		again, err := apa.Validate(oneByteReader{bytes.NewReader(data)}, name, corpusOptions(), nil)
		if err != nil {
			t.Fatalf("Validate byte by byte: %v", err)
		}
		if again.Total != rep.Total || len(again.Anomalies) > 0 && again.Anomalies[0] != rep.Anomalies[0] {
			t.Fatalf("byte by byte: got %d anomalies, first %+v; want %d, first %+v", again.Total, again.Anomalies, rep.Total, rep.Anomalies)
		}
	})
}

// FuzzParseCallName checks that ParseCallName never panics and that a name
// it accepts prints back to itself.
func FuzzParseCallName(f *testing.F) {
	for _, s := range []string{
		defaultCallName, "2026_22940028800010_20261128101500.XML", "2026_22940028800010_20261128101500_REP.xml",
		"2026_22940028800011_20261128101500.xml", "1999_22940028800010_20261128101500.xml", "2026_22940028800010_20260230101500.xml",
		"", "../etc/passwd", "2026__.xml", "2026_22940028800010_20261128101500.xml\x00",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, apa.Paris)
	f.Fuzz(func(t *testing.T, s string) {
		n, err := apa.ParseCallName(s, now)
		if err != nil {
			return
		}
		if got := n.String(); got != s {
			t.Errorf("ParseCallName(%q).String() = %q", s, got)
		}
		if strings.ContainsAny(s, "/\\") {
			t.Errorf("accepted a path: %q", s)
		}
	})
}
