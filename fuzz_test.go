package pigp_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pigp/pigp"
)

// FuzzCheckPassword: the policy never panics and never accepts what it
// documents as refused (non-ASCII, too long, containing the login).
func FuzzCheckPassword(f *testing.F) {
	for _, s := range []string{"Ncv-8tq!Rw2#Lpz6", "alice-xt-Password-1", "é", strings.Repeat("a", 200), "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		if len(pw) > 300 {
			return // bounded like the transports do
		}
		err := pigp.CheckPassword(pw, "alice-xt", "Alice Martin", []string{"22940028800010"})
		if err != nil {
			return
		}
		if len(pw) > pigp.MaxPasswordLength || strings.Contains(strings.ToLower(pw), "alice-xt") {
			t.Fatalf("accepted %q", pw)
		}
		for _, r := range pw {
			if r < 0x20 || r > 0x7e {
				t.Fatalf("accepted non-printable-ASCII %q", pw)
			}
		}
	})
}

// FuzzParseSSHKey: an authorized_keys line parses or fails, never panics.
func FuzzParseSSHKey(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice"))
	f.Add([]byte("ssh-rsa AAAA"))
	f.Fuzz(func(t *testing.T, line []byte) {
		k, err := pigp.ParseSSHKey(line)
		if err == nil && k.Fingerprint == "" {
			t.Fatal("key without fingerprint")
		}
	})
}

// FuzzAuditNormalize: normalised text is valid UTF-8 without control
// characters and bounded; distinct texts stay distinct once normalised
// (hostile names are kept literally: the escaping is injective below the
// length bound); the hash of an event recomputed on a copy is the same,
// and it commits to each field: another object, or the object and the
// login swapped, hash differently.
func FuzzAuditNormalize(f *testing.F) {
	f.Add("../\x00\n{user}$(id)", "\xff")
	f.Add(`\x00`, "\x00") // an escape written literally is not the byte
	f.Add(`\\`, `\`)
	f.Fuzz(func(t *testing.T, object, login string) {
		at := time.Date(2026, 11, 28, 11, 0, 0, 123456789, time.UTC)
		e := &pigp.AuditEvent{Action: pigp.AuditUploadRefused, Object: object, Login: login, Time: at}
		e.Normalize()
		for _, s := range []string{e.Object, e.Login} {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\n\r\x1b") || utf8.RuneCountInString(s) > 1000 {
				t.Fatalf("normalised %q", s)
			}
		}
		// The same fields normalised from the other input: login as object.
		o := &pigp.AuditEvent{Action: pigp.AuditUploadRefused, Object: login, Login: login, Time: at}
		o.Normalize()
		short := utf8.RuneCountInString(e.Object) < 1000 && utf8.RuneCountInString(o.Object) < 1000 // not cut
		if object != login && short && e.Object == o.Object {
			t.Fatalf("%q and %q are both recorded as %q", object, login, e.Object)
		}
		h := e.ComputeHash()
		copied := *e
		if copied.ComputeHash() != h {
			t.Fatal("the hash of a copy differs")
		}
		other := *e
		other.Object += "x"
		if other.ComputeHash() == h {
			t.Fatalf("objects %q and %q hash alike", e.Object, other.Object)
		}
		swapped := *e
		swapped.Object, swapped.Login = e.Login, e.Object
		if e.Object != e.Login && swapped.ComputeHash() == h {
			t.Fatalf("object and login swapped hash alike: %q, %q", e.Object, e.Login)
		}
	})
}
