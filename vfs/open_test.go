package vfs_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/internal/sftptest"
)

// TestOpenFlags: what each directory lets a client open, for reading and
// for writing, and the message of each refusal.
func TestOpenFlags(t *testing.T) {
	e := sftptest.New(t)
	resp := e.Publish(siretA, "reponse.xml", []byte("<ReponseAPA/>"))
	c := e.Session(e.CallerA()).Client
	deposited := callName(siretA, 1)
	put(t, c, deposited, data(10, 1))
	r := e.RawSession(e.CallerA()).Raw
	ok := ""
	for _, tc := range []struct {
		path   string
		pflags uint32
		code   uint32
		msg    string
	}{
		// /retrait: read-only.
		{"/retrait/" + resp.Name, flagRead, fxOK, ok},
		{"/retrait/" + resp.Name, flagPut, fxDenied, msgReadOnly},
		{"/retrait/" + resp.Name, flagRead | flagWrite, fxDenied, msgReadOnly},
		{"/retrait/" + resp.Name, flagWrite | flagAppend, fxDenied, msgReadOnly},
		{"/retrait/absent.xml", flagRead, fxNoFile, "…introuvable"},
		{"/retrait", flagRead, fxFailure, msgReadDir},
		// /historique and its documentation: read-only.
		{"/historique/depots.csv", flagRead, fxOK, ok},
		{"/historique/retraits.csv", flagRead, fxOK, ok},
		{"/historique/depots.csv", flagPut, fxDenied, msgReadOnly},
		{"/historique/retraits.csv", flagWrite | flagCreat, fxDenied, msgReadOnly},
		{"/historique/autre.csv", flagRead, fxNoFile, msgNotFound},
		{"/historique/documentation/DemandeAPA.xsd", flagRead, fxOK, ok},
		{"/historique/documentation/DemandeAPA.xsd", flagWrite | flagTrunc, fxDenied, msgReadOnly},
		{"/historique", flagRead, fxFailure, msgReadDir},
		// /depot: a deposit box, write-only.
		{"/depot/" + deposited, flagRead, fxDenied, msgDepotRead},
		{"/depot/" + callName(siretA, 2), flagRead, fxDenied, msgDepotRead},
		{"/depot/" + callName(siretA, 3), flagPut, fxOK, ok},
		{"/depot/" + callName(siretA, 4), flagRead | flagWrite | flagCreat | flagTrunc, fxOK, ok},
		{"/depot/" + callName(siretA, 5), flagWrite | flagCreat, fxOK, ok},
		{"/depot/" + callName(siretA, 6), flagWrite | flagCreat | flagExcl, fxOK, ok},
		{"/depot", flagRead, fxFailure, msgReadDir},
		{"/depot", flagPut, fxDenied, msgWriteDepot},
		// Elsewhere: nothing.
		{"/", flagRead, fxFailure, msgReadDir},
		{"/", flagPut, fxDenied, msgWriteDepot},
		{"/fichier.xml", flagRead, fxNoFile, msgNotFound},
	} {
		h, code, msg := r.Open(tc.path, tc.pflags)
		wantStatus(t, "open "+tc.path, code, msg, tc.code, tc.msg)
		if h != "" {
			r.Close(h)
		}
	}
}

// TestNamesAtOpen: a name that breaks the contract is refused at open,
// with the French reason, whatever the flags and whether it is sent
// directly or under a staging name; nothing is recorded or kept.
func TestNamesAtOpen(t *testing.T) {
	e := sftptest.New(t)
	now := sftptest.Start.In(apa.Paris)
	stamp := now.Add(-time.Hour).Format("20060102150405")
	future := now.Add(48 * time.Hour).Format("20060102150405")
	year := now.Format("2006")
	good := callName(siretA, 1)
	cases := []struct{ name, want string }{
		{"notes.txt", "extension"},
		{year + "_" + siretA + "_" + stamp + ".XML", "minuscules"},
		{year + "_" + siretA + "_" + stamp + ".xml.gz", "extension"},
		{year + "_" + siretA + ".xml", "AAAA_SIRET_AAAAMMJJhhmmss.xml"},
		{"1999_" + siretA + "_" + stamp + ".xml", "campagne"},
		{"3000_" + siretA + "_" + stamp + ".xml", "campagne"},
		{year + "_22940028800011_" + stamp + ".xml", "clé de contrôle"},
		{year + "_2294002880001_" + stamp + ".xml", "14 chiffres"},
		{year + "_" + siretA + "_" + year + "1332101500.xml", "date et heure réelles"},
		{year + "_" + siretA + "_" + future + ".xml", "futur"},
		{year + "_" + siretB + "_" + stamp + ".xml", "le compte agent-a n'est pas habilité pour le SIRET " + siretB},
		{year + "_" + siretC + "_" + stamp + ".xml", "n'est pas habilité pour le SIRET " + siretC},
		// Hostile names: refused and kept literally, never interpreted.
		{"a\x00" + good, ""},
		{"a\n" + good, ""},
		{"{user}.xml", "AAAA_SIRET_AAAAMMJJhhmmss.xml"},
		{"$(id).xml", ""},
		{"'; DROP TABLE deposits; --" + good, ""},
		{strings.Replace(good, "2", "２", 1), ""}, // fullwidth digit
		{strings.Replace(good, ".xml", ".xмl", 1), "caractère non autorisé"},
		{strings.Repeat("A", 4096) + ".xml", ""},
	}
	r := e.RawSession(e.CallerA()).Raw
	for _, tc := range cases {
		type try struct {
			path  string
			flags uint32
		}
		tries := []try{{tc.name + ".filepart", flagPut}, {tc.name + ".0a1b2c3d.partial", flagPut}, {".in." + tc.name, flagWrite}}
		for _, flags := range []uint32{flagPut, flagWrite | flagCreat, flagWrite | flagAppend, flagWrite | flagCreat | flagExcl} {
			tries = append(tries, try{tc.name, flags})
		}
		for _, try := range tries {
			_, code, msg := r.Open("/depot/"+try.path, try.flags)
			if code != fxDenied || !strings.Contains(msg, "refusé") || !strings.Contains(msg, tc.want) {
				t.Errorf("open %q flags %#x: status %d %q; want %d with %q", try.path, try.flags, code, msg, fxDenied, tc.want)
			}
		}
	}
	if ds := e.Deposits(siretA); len(ds) != 0 {
		t.Fatalf("%d deposits from refused names", len(ds))
	}
	if ds := e.Deposits(siretB); len(ds) != 0 {
		t.Fatalf("%d deposits from refused names", len(ds))
	}
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("refused names left temporary files %v", tmp)
	}
	c := e.Session(e.CallerA()).Client
	for _, tc := range cases {
		if _, err := c.Stat("/depot/" + tc.name); err == nil {
			t.Errorf("refused name %q is STAT-able", tc.name)
		}
	}
	e.NoErrorLogged()
}

// TestNameOfAuditor: an auditeur reads but never deposits: refused at open
// with the auditeur's message.
func TestNameOfAuditor(t *testing.T) {
	e := sftptest.New(t)
	auditor := e.CallerA()
	auditor.Source = pigp.SourceLDAP
	auditor.Grants = nil // reads siretA, acts for nothing
	if auditor.MayActFor(siretA) || !auditor.MayRead(siretA) {
		t.Fatal("the caller is not an auditeur: the test proves nothing")
	}
	r := e.RawSession(auditor).Raw
	_, code, msg := r.Open("/depot/"+callName(siretA, 1), flagPut)
	if code != fxDenied || !strings.Contains(msg, "Profil auditeur : lecture seule pour le SIRET "+siretA) {
		t.Errorf("auditeur's upload: %d %q", code, msg)
	}
}

// TestDiskFullAtOpen: below the minimum free space, every upload, a
// resume too, is refused at open with a French message; reading goes on.
func TestDiskFullAtOpen(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	part := callName(siretA, 1) + ".filepart"
	f := upload(t, c, part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, data(100, 1))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.Svc.MinFreeSpace = exchange.SpacePolicy{Percent: 100} // never met
	r := e.RawSession(e.CallerA()).Raw
	for p, flags := range map[string]uint32{"/depot/" + callName(siretA, 2): flagPut, "/depot/" + part: flagWrite} {
		_, code, msg := r.Open(p, flags)
		wantStatus(t, "open "+p, code, msg, fxFailure, "…manque d'espace disque")
	}
	if _, code, msg := r.Open("/historique/depots.csv", flagRead); code != fxOK {
		t.Errorf("read with the disk full: %d %q", code, msg)
	}
}
