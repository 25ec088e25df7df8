package apa_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigp/pigp/apa"
)

// TestDocExamples checks that the three examples of
// docs/cahier-des-charges.md are the files of testdata/exemples.
func TestDocExamples(t *testing.T) {
	doc := readFile(t, "../docs/cahier-des-charges.md")
	var blocks []string
	for rest := doc; ; {
		_, after, ok := strings.Cut(rest, "```xml\n")
		if !ok {
			break
		}
		block, tail, _ := strings.Cut(after, "```\n")
		blocks = append(blocks, block)
		rest = tail
	}
	files := []string{"demande.xml", "reponse.xml", "compte-rendu.xml"}
	if len(blocks) != len(files) {
		t.Fatalf("got %d xml examples in the documentation, want %d", len(blocks), len(files))
	}
	for i, f := range files {
		if want := readFile(t, filepath.Join("testdata", "exemples", f)); blocks[i] != want {
			t.Errorf("example %d of the documentation differs from testdata/exemples/%s", i+1, f)
		}
	}
}

// TestExamplesAgainstXSD validates the examples against their XSD.
func TestExamplesAgainstXSD(t *testing.T) {
	bin := xmllint(t)
	for file, schema := range map[string]string{
		"demande.xml":      apa.SchemaRequest,
		"reponse.xml":      apa.SchemaResponse,
		"compte-rendu.xml": apa.SchemaReport,
	} {
		if ok, out := xmllintValid(t, bin, filepath.Join("xsd", schema), filepath.Join("testdata", "exemples", file)); !ok {
			t.Errorf("%s is invalid against %s:\n%s", file, schema, out)
		}
	}
}
