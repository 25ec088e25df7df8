package fiscal

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

// CallOptions tune GenerateCall.
type CallOptions struct {
	Name      apa.CallName
	Count     int    // number of Demande elements
	Seed      uint64 // the same seed gives the same file
	UnknownPc int    // percentage of requests for people absent from the data
	Contact   string // CourrielContact
}

// GenerateCall writes a call file (DemandeAPA) whose requests identify
// people of persons — written as a département would, in mixed case, with
// accents and usage names, sometimes with an unknown birth day — plus a
// share of people absent from the data. It streams: memory does not grow
// with Count. The postal code and commune of each address are a real pair
// taken from addresses (code → commune name).
func GenerateCall(w io.Writer, persons []pigp.Person, addresses [][2]string, o CallOptions) error {
	if len(persons) == 0 || len(addresses) == 0 {
		return fmt.Errorf("generate call: no persons or addresses")
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0xa5a5a5a5))
	bw := bufio.NewWriterSize(w, 256<<10)
	contact := o.Contact
	if contact == "" {
		contact = "apa@departement.example.fr"
	}
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>
<DemandeAPA version="1.0">
  <Entete>
    <Campagne>%d</Campagne>
    <SiretDeposant>%s</SiretDeposant>
    <DateCreation>%s</DateCreation>
    <CourrielContact>%s</CourrielContact>
    <Emetteur><Nom>Service APA</Nom><Prenom>Agent</Prenom></Emetteur>
    <NombreDemandes>%d</NombreDemandes>
  </Entete>
`, o.Name.Campaign, o.Name.SIRET, o.Name.Timestamp.Format("2006-01-02T15:04:05"), html.EscapeString(contact), o.Count)
	streets := []string{"rue de la République", "avenue du Général-de-Gaulle", "place de l'Église", "chemin des Vignes", "rue Victor-Hugo"}
	for i := 1; i <= o.Count; i++ {
		p := persons[rng.IntN(len(persons))]
		if rng.IntN(100) < o.UnknownPc {
			p.BirthName = "Inconnu" + strings.Repeat("e", 1+rng.IntN(3))
		}
		date := p.BirthDate
		if rng.IntN(20) == 0 {
			date = date[:8] + "00" // unknown day
		}
		place := "<CodeCommune>" + p.BirthPlace + "</CodeCommune>"
		if strings.HasPrefix(p.BirthPlace, "99") {
			place = "<CodePays>" + p.BirthPlace + "</CodePays>"
		}
		name := p.BirthName
		if rng.IntN(2) == 0 {
			name = strings.ToUpper(name)
		}
		usage := ""
		if p.UsageName != "" {
			usage = "\n    <NomUsage>" + html.EscapeString(p.UsageName) + "</NomUsage>"
		}
		addr := addresses[rng.IntN(len(addresses))]
		fmt.Fprintf(bw, `  <Demande>
    <ReferenceDossier>DOS-%07d</ReferenceDossier>
    <Sexe>%s</Sexe>
    <NomNaissance>%s</NomNaissance>%s
    <Prenoms>%s</Prenoms>
    <DateNaissance>%s</DateNaissance>
    <LieuNaissance>%s</LieuNaissance>
    <Adresse><Ligne1>%d %s</Ligne1><CodePostal>%s</CodePostal><Commune>%s</Commune></Adresse>
  </Demande>
`, i, p.Sex, html.EscapeString(name), usage, html.EscapeString(p.FirstNames), date, place,
			1+rng.IntN(120), html.EscapeString(streets[rng.IntN(len(streets))]), addr[0], html.EscapeString(addr[1]))
	}
	bw.WriteString("</DemandeAPA>\n")
	return bw.Flush()
}

// SampleAddresses are real postal code and commune pairs for generated
// addresses.
var SampleAddresses = [][2]string{{"94000", "Créteil"}, {"94300", "Vincennes"}, {"75012", "Paris"}, {"13001", "Marseille"},
	{"69003", "Lyon"}, {"33000", "Bordeaux"}, {"59000", "Lille"}, {"31000", "Toulouse"}, {"67000", "Strasbourg"}}
