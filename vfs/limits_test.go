package vfs_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/pigp/pigp/internal/sftptest"
	"github.com/pigp/pigp/vfs"
)

// TestHandleLimit: a session holds at most Shared.MaxHandles files and
// directories open, uploads included; the others are refused in French
// (logged once), STAT needs none, and a closed handle is given back.
func TestHandleLimit(t *testing.T) {
	for _, max := range []int{0, 5} { // 0: DefaultMaxHandles
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			e := sftptest.New(t)
			e.Shared.MaxHandles = max
			if max == 0 {
				max = vfs.DefaultMaxHandles
			}
			resp := e.Publish(siretA, "reponse.xml", []byte("<ReponseAPA/>"))
			s := e.RawSession(e.CallerA())
			r := s.Raw
			var handles []string
			for i := 0; len(handles) < max; i++ {
				var h string
				var code uint32
				var msg string
				switch i % 4 {
				case 0:
					h, code, msg = r.Opendir("/retrait")
				case 1:
					h, code, msg = r.Open("/depot/"+callName(siretA, i), flagPut)
				case 2:
					h, code, msg = r.Open("/retrait/"+resp.Name, flagRead)
				default:
					h, code, msg = r.Open("/historique/documentation/DemandeAPA.xsd", flagRead)
				}
				if code != fxOK {
					t.Fatalf("handle %d: %d %q", len(handles), code, msg)
				}
				handles = append(handles, h)
			}
			refusal := fmt.Sprintf("Ouverture refusée : %d fichiers ou répertoires sont déjà ouverts dans cette session "+
				"(au plus %d à la fois). Fermez-en avant d'en ouvrir d'autres.", max, max)
			for range 3 {
				_, code, msg := r.Open("/historique/depots.csv", flagRead)
				wantStatus(t, "open beyond the limit", code, msg, fxFailure, refusal)
				_, code, msg = r.Opendir("/depot")
				wantStatus(t, "opendir beyond the limit", code, msg, fxFailure, refusal)
				_, code, msg = r.Open("/depot/"+callName(siretA, 1000), flagPut)
				wantStatus(t, "upload beyond the limit", code, msg, fxFailure, refusal)
			}
			if typ, _ := r.Request(sftptest.FxpStat, sftptest.Str("/historique/depots.csv")); typ != sftptest.FxpAttrs {
				t.Errorf("stat at the limit: reply type %d", typ)
			}
			if n := s.FS.OpenHandles(); n != max {
				t.Errorf("OpenHandles() = %d, want %d", n, max)
			}
			if n := strings.Count(e.Logs(), "handle refused: session at its limit"); n != 1 {
				t.Errorf("%d log lines for 9 refusals, want 1", n)
			}
			// Another session has its own handles.
			if _, code, msg := e.RawSession(e.CallerA()).Raw.Open("/historique/depots.csv", flagRead); code != fxOK {
				t.Errorf("another session: %d %q", code, msg)
			}
			for _, h := range handles[:2] {
				if code, msg := r.Close(h); code != fxOK {
					t.Fatalf("close: %d %q", code, msg)
				}
			}
			for range 2 {
				if _, code, msg := r.Open("/historique/depots.csv", flagRead); code != fxOK {
					t.Fatalf("open after closing: %d %q", code, msg)
				}
			}
			if _, code, _ := r.Open("/historique/depots.csv", flagRead); code != fxFailure {
				t.Fatal("a handle beyond the limit after closing and reopening")
			}
			s.Close()
			if n := s.FS.OpenHandles(); n != 0 {
				t.Errorf("OpenHandles() = %d after the session", n)
			}
			if tmp := e.TempFiles(); len(tmp) != 0 {
				t.Errorf("the session's uploads left %v", tmp)
			}
		})
	}
}

// TestOverflowingOffsets: the numbers no client should send (a write at
// 2^63-5 whose end overflows an int64, at 2^64-1, a size of 2^63 or
// 2^64-1, a read at 2^63) are refused with SSH_FX_FAILURE and a French
// message; the upload is abandoned (its close says so, nothing is
// deposited); a read at 2^63-1 is EOF; nothing is logged as an error.
func TestOverflowingOffsets(t *testing.T) {
	e := sftptest.New(t)
	resp := e.Publish(siretA, "reponse.xml", []byte("<ReponseAPA/>"))
	r := e.RawSession(e.CallerA()).Raw
	for i, tc := range []struct {
		name string
		do   func(h, path string) (uint32, string)
		want string
	}{
		{"write at 2^63-5", func(h, _ string) (uint32, string) { return r.Write(h, math.MaxInt64-4, make([]byte, 10)) },
			"la position 9223372036854775803 dépasse la taille maximale autorisée"},
		{"write at 2^64-1", func(h, _ string) (uint32, string) { return r.Write(h, math.MaxUint64, []byte("x")) },
			"la position 18446744073709551615 dépasse la taille maximale autorisée"},
		{"fsetstat size 2^63", func(h, _ string) (uint32, string) { return r.FsetstatSize(h, 1<<63) },
			"la taille 9223372036854775808 dépasse la taille maximale autorisée"},
		{"setstat size 2^64-1", func(_, p string) (uint32, string) { return r.SetstatSize(p, math.MaxUint64) },
			"la taille 18446744073709551615 dépasse la taille maximale autorisée"},
		{"staged: write at 2^64-1", func(h, _ string) (uint32, string) { return r.Write(h, math.MaxUint64, []byte("x")) },
			"la position 18446744073709551615 dépasse la taille maximale autorisée"},
		{"staged: setstat size 2^63", func(_, p string) (uint32, string) { return r.SetstatSize(p, 1<<63) },
			"la taille 9223372036854775808 dépasse la taille maximale autorisée"},
	} {
		p := "/depot/" + callName(siretA, i)
		if strings.HasPrefix(tc.name, "staged") {
			p += ".filepart"
		}
		h, code, msg := r.Open(p, flagPut)
		if code != fxOK {
			t.Fatalf("open: %d %q", code, msg)
		}
		if code, msg := r.Write(h, 0, []byte("<DemandeAPA>")); code != fxOK {
			t.Fatalf("first write: %d %q", code, msg)
		}
		code, msg = tc.do(h, p)
		wantStatus(t, tc.name, code, msg, fxFailure, "…"+tc.want)
		code, msg = r.Close(h)
		wantStatus(t, tc.name+", close", code, msg, fxFailure, "…dépasse la taille maximale")
	}
	if ds := e.Deposits(siretA); len(ds) != 0 {
		t.Fatalf("%d deposits after refused writes", len(ds))
	}
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("refused uploads left %v", tmp)
	}
	for _, p := range []string{"/retrait/" + resp.Name, "/historique/depots.csv"} {
		h, code, msg := r.Open(p, flagRead)
		if code != fxOK {
			t.Fatalf("open %s: %d %q", p, code, msg)
		}
		_, code, msg = r.Read(h, 1<<63, 100)
		wantStatus(t, "read at 2^63 of "+p, code, msg, fxFailure,
			"Lecture refusée : position de lecture hors limites (2^63 octets ou plus)")
		if _, code, msg := r.Read(h, math.MaxInt64, 100); code != fxEOF {
			t.Errorf("read at 2^63-1 of %s: %d %q, want EOF", p, code, msg)
		}
		if b, code, _ := r.Read(h, 0, 13); code != fxOK || len(b) != 13 {
			t.Errorf("read at 0 of %s after the refusals: %d %q", p, code, b)
		}
		r.Close(h)
	}
	e.NoErrorLogged()
}
