package apa_test

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/pigp/pigp/apa"
)

// generator streams a valid call file of n Demande elements without holding
// it in memory; each record is about 600 bytes, as a real file would be.
type generator struct {
	n, i     int
	ref      func(i int) int // the number in request i's reference; nil: i
	declared string          // NombreDemandes as written; "": n
	buf      []byte
	off      int
	header   bool
	trailer  bool
}

func newGenerator(n int) *generator { return &generator{n: n} }

func (g *generator) Read(p []byte) (int, error) {
	for g.off == len(g.buf) {
		g.buf, g.off = g.buf[:0], 0
		switch {
		case !g.header:
			g.header = true
			g.buf = fmt.Appendf(g.buf, `<?xml version="1.0" encoding="UTF-8"?>
<DemandeAPA version="1.0">
  <Entete>
    <Campagne>2026</Campagne>
    <SiretDeposant>22940028800010</SiretDeposant>
    <DateCreation>2026-11-28T10:15:00</DateCreation>
    <CourrielContact>apa@valdemarne.fr</CourrielContact>
    <Emetteur>
      <Nom>DURAND</Nom>
      <Prenom>Claire</Prenom>
    </Emetteur>
    <NombreDemandes>%s</NombreDemandes>
  </Entete>
`, cmp.Or(g.declared, strconv.Itoa(g.n)))
		case g.i < g.n:
			g.i++
			g.buf = append(g.buf, "  <Demande>\n    <ReferenceDossier>APA-2026-"...)
			ref := g.i
			if g.ref != nil {
				ref = g.ref(g.i)
			}
			g.buf = strconv.AppendInt(g.buf, int64(ref), 10)
			g.buf = append(g.buf, `</ReferenceDossier>
    <Sexe>F</Sexe>
    <NomNaissance>MARTIN-DELACROIX</NomNaissance>
    <NomUsage>LEFÈVRE</NomUsage>
    <Prenoms>Jeanne Marie Thérèse</Prenoms>
    <DateNaissance>1938-02-14</DateNaissance>
    <LieuNaissance>
      <CodeCommune>94028</CodeCommune>
      <Libelle>Créteil</Libelle>
    </LieuNaissance>
    <Adresse>
      <Ligne1>12 RUE DES LILAS</Ligne1>
      <Ligne2>BATIMENT B ESCALIER 3</Ligne2>
      <Ligne3>RESIDENCE LES TILLEULS</Ligne3>
      <CodePostal>94000</CodePostal>
      <Commune>CRETEIL</Commune>
    </Adresse>
  </Demande>
`...)
		case !g.trailer:
			g.trailer = true
			g.buf = append(g.buf, "</DemandeAPA>\n"...)
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, g.buf[g.off:])
	g.off += n
	return n, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkValidate validates a generated 100 000-demande file (about
// 60 MB). Run with: go test -bench Validate -benchmem ./apa/
func BenchmarkValidate(b *testing.B) {
	name := mustName(b, "2026_22940028800010_20261128101500.xml")
	size := int64(0)
	{
		c := &countingReader{r: newGenerator(apa.MaxDemandes)}
		io.Copy(io.Discard, c)
		size = c.n
	}
	b.SetBytes(size)
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		records := 0
		rep, err := apa.Validate(newGenerator(apa.MaxDemandes), name, apa.Options{}, func(d apa.Demande) error {
			records++
			if records%20000 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Total != 0 || records != apa.MaxDemandes {
			b.Fatalf("got %d anomalies (%v) and %d records, want 0 and %d", rep.Total, rep.Codes(), records, apa.MaxDemandes)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
