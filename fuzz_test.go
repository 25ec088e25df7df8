package pigp_test

import (
	"encoding/json"
	"strings"
	"testing"
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
// characters, bounded; the canonical form keeps every field exactly (it
// decodes back to them), so the hash depends on each field and on nothing
// else: the same event built again hashes the same, fields swapped differ.
func FuzzAuditNormalize(f *testing.F) {
	f.Add("../\x00\n{user}$(id)", "\xff")
	f.Fuzz(func(t *testing.T, object, login string) {
		e := &pigp.AuditEvent{Object: object, Login: login}
		e.Normalize()
		for _, s := range []string{e.Object, e.Login} {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\n\r\x1b") || utf8.RuneCountInString(s) > 1000 {
				t.Fatalf("normalised %q", s)
			}
		}
		var fields []string
		if err := json.Unmarshal(e.Canonical(), &fields); err != nil || len(fields) != 13 ||
			fields[5] != e.Login || fields[9] != e.Object {
			t.Fatalf("canonical form %s does not keep login %q and object %q (%v)", e.Canonical(), e.Login, e.Object, err)
		}
		again := &pigp.AuditEvent{Object: object, Login: login}
		again.Normalize()
		if again.ComputeHash() != e.ComputeHash() {
			t.Fatalf("the same event hashes %s then %s", e.ComputeHash(), again.ComputeHash())
		}
		swapped := &pigp.AuditEvent{Object: e.Login, Login: e.Object, Time: e.Time}
		if e.Object != e.Login && swapped.ComputeHash() == e.ComputeHash() {
			t.Fatalf("object and login swapped, same hash")
		}
	})
}
