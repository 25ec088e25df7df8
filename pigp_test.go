package pigp_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

func TestValidateSIRET(t *testing.T) {
	tests := []struct {
		name  string
		siret string
		ok    bool
		want  string // substring of the message when refused
	}{
		{"ValDeMarne", "22940028800010", true, ""},
		{"Paris", "22750001100019", true, ""},
		{"BadChecksum", "22940028800011", false, "clé de contrôle"},
		{"DigitSumMultipleOf5NotLaPoste", "22940028800000", false, "clé de contrôle"},
		{"TooShort", "2294002880001", false, "14 chiffres"},
		{"TooLong", "229400288000100", false, "14 chiffres"},
		{"Empty", "", false, "14 chiffres"},
		{"Letters", "2294002880001A", false, "que des chiffres"},
		{"Spaces", "229 400 288 000", false, ""},
		{"LaPosteHeadquarters", "35600000000048", true, ""},
		{"LaPosteDigitSumRule", "35600000000001", true, ""},
		{"LaPosteBadDigitSum", "35600000000000", false, "clé de contrôle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pigp.ValidateSIRET(tt.siret)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateSIRET(%q) = %v, want nil", tt.siret, err)
				}
				return
			}
			if got := pigp.ErrorCode(err); got != pigp.EINVALID {
				t.Fatalf("ValidateSIRET(%q) code = %q (%v), want %q", tt.siret, got, err, pigp.EINVALID)
			}
			if msg := pigp.ErrorMessage(err); !strings.Contains(msg, tt.want) {
				t.Fatalf("ValidateSIRET(%q) message = %q, want it to contain %q", tt.siret, msg, tt.want)
			}
		})
	}
}

func TestOrganisation_Validate(t *testing.T) {
	tests := []struct {
		name string
		org  pigp.Organisation
		code string
	}{
		{"OK", pigp.Organisation{SIRET: "22940028800010", Name: "Département du Val-de-Marne"}, ""},
		{"BadSIRET", pigp.Organisation{SIRET: "22940028800011", Name: "x"}, pigp.EINVALID},
		{"BlankName", pigp.Organisation{SIRET: "22940028800010", Name: "  "}, pigp.EINVALID},
		{"LongName", pigp.Organisation{SIRET: "22940028800010", Name: strings.Repeat("é", 201)}, pigp.EINVALID},
		{"NameOf200Runes", pigp.Organisation{SIRET: "22940028800010", Name: strings.Repeat("é", 200)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pigp.ErrorCode(tt.org.Validate()); got != tt.code {
				t.Fatalf("Validate() code = %q, want %q", got, tt.code)
			}
		})
	}
}

var idRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := pigp.NewID()
		if !idRE.MatchString(id) {
			t.Fatalf("NewID() = %q, want 32 lowercase hex characters", id)
		}
		if !pigp.IsID(id) {
			t.Fatalf("IsID(NewID() = %q) = false", id)
		}
		if seen[id] {
			t.Fatalf("NewID() returned %q twice", id)
		}
		seen[id] = true
	}
}

func TestIsID(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"0123456789abcdef0123456789abcdef", true},
		{"0123456789ABCDEF0123456789ABCDEF", false},
		{"0123456789abcdef0123456789abcde", false},
		{"0123456789abcdef0123456789abcdef0", false},
		{"0123456789abcdef0123456789abcdeg", false},
		{"../3456789abcdef0123456789abcdef", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := pigp.IsID(tt.s); got != tt.want {
			t.Errorf("IsID(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestCaller_MayActFor(t *testing.T) {
	c := &pigp.Caller{SIRETs: []string{"22940028800010", "22750001100019"}}
	if !c.MayActFor("22750001100019") {
		t.Error("MayActFor(own SIRET) = false, want true")
	}
	if c.MayActFor("35600000000048") {
		t.Error("MayActFor(other SIRET) = true, want false")
	}
	if c.MayActFor("") {
		t.Error(`MayActFor("") = true, want false`)
	}
}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

func mustHash(tb testing.TB, password string) string {
	tb.Helper()
	h, err := pigp.HashPassword(password)
	if err != nil {
		tb.Fatalf("HashPassword(%q): %v", password, err)
	}
	return h
}

func TestHashPassword(t *testing.T) {
	const pw = "Correct-Horse-42"
	h1, h2 := mustHash(t, pw), mustHash(t, pw)

	t.Run("PHCFormat", func(t *testing.T) {
		m := phcRE.FindStringSubmatch(h1)
		if m == nil {
			t.Fatalf("hash = %q, want $argon2id$v=19$m=19456,t=2,p=1$salt$key", h1)
		}
		salt, err := base64.RawStdEncoding.DecodeString(m[1])
		if err != nil || len(salt) != 16 {
			t.Fatalf("salt %q: %d bytes, %v; want 16 bytes of unpadded base64", m[1], len(salt), err)
		}
		key, err := base64.RawStdEncoding.DecodeString(m[2])
		if err != nil || len(key) != 32 {
			t.Fatalf("key %q: %d bytes, %v; want 32 bytes of unpadded base64", m[2], len(key), err)
		}
	})
	t.Run("PerPasswordSalt", func(t *testing.T) {
		if h1 == h2 {
			t.Fatalf("two hashes of the same password are equal: %q", h1)
		}
		if phcRE.FindStringSubmatch(h1)[1] == phcRE.FindStringSubmatch(h2)[1] {
			t.Fatal("two hashes share their salt")
		}
	})
	t.Run("Verify", func(t *testing.T) {
		for _, h := range []string{h1, h2} {
			if !pigp.VerifyPassword(h, pw) {
				t.Fatalf("VerifyPassword(%q, right password) = false", h)
			}
		}
	})
	t.Run("WrongPassword", func(t *testing.T) {
		for _, wrong := range []string{"correct-horse-42", "Correct-Horse-4", "Correct-Horse-42 ", ""} {
			if pigp.VerifyPassword(h1, wrong) {
				t.Errorf("VerifyPassword(hash, %q) = true, want false", wrong)
			}
		}
	})
	t.Run("EmptyHashNeverMatches", func(t *testing.T) {
		for _, p := range []string{"", pw, "pigp-dummy-password-for-timing-parity"} {
			if pigp.VerifyPassword("", p) {
				t.Errorf("VerifyPassword(\"\", %q) = true, want false", p)
			}
		}
	})
	t.Run("TooLong", func(t *testing.T) {
		long := strings.Repeat("a", pigp.MaxPasswordLength+1)
		if _, err := pigp.HashPassword(long); pigp.ErrorCode(err) != pigp.EINVALID {
			t.Fatalf("HashPassword(129 chars) error = %v, want EINVALID", err)
		}
		max := strings.Repeat("a", pigp.MaxPasswordLength)
		h := mustHash(t, max)
		if !pigp.VerifyPassword(h, max) {
			t.Fatal("VerifyPassword(128-char password) = false, want true")
		}
		if pigp.VerifyPassword(h, long) {
			t.Fatal("VerifyPassword(129-char password) = true, want false")
		}
	})
	t.Run("Tampered", func(t *testing.T) {
		m := phcRE.FindStringSubmatch(h1)
		salt, key := m[1], m[2]
		flip := func(s string) string { // change the first character, keep valid base64
			if s[0] == 'A' {
				return "B" + s[1:]
			}
			return "A" + s[1:]
		}
		tampered := map[string]string{
			"Key":         "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + flip(key),
			"Salt":        "$argon2id$v=19$m=19456,t=2,p=1$" + flip(salt) + "$" + key,
			"Time":        "$argon2id$v=19$m=19456,t=3,p=1$" + salt + "$" + key,
			"Memory":      "$argon2id$v=19$m=19455,t=2,p=1$" + salt + "$" + key,
			"Algorithm":   "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
			"Version":     "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
			"Truncated":   "$argon2id$v=19$m=19456,t=2,p=1$" + salt,
			"BadBase64":   "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "!",
			"ZeroTime":    "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key,
			"HugeMemory":  "$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key,
			"EmptyKey":    "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$",
			"NotPHC":      "plaintext",
			"StoreFiller": "$argon2id$x",
		}
		for name, h := range tampered {
			t.Run(name, func(t *testing.T) {
				if pigp.VerifyPassword(h, pw) {
					t.Fatalf("VerifyPassword(%q, right password) = true, want false", h)
				}
			})
		}
	})
}

func TestCheckPassword(t *testing.T) {
	const (
		login = "djouffre-xt"
		name  = "Denis Jouffre"
		siret = "22940028800010"
	)
	tests := []struct {
		name     string
		password string
		want     string // substring of the refusal, "" when accepted
	}{
		{"ThreeClasses12", "Abcdefgh1234", ""},
		{"LowerDigitSpecial", "kdmwpqrz12-!", ""},
		{"SequenceTooEasy", "abcdefgh12-!", "trop facile à deviner"},
		{"FourClasses", "Tr0ub4dor&3x", ""},
		{"SpaceIsSpecial", "abcd efgh 12", ""},
		{"TooShort", "Abcdefg-123", "12 caractères au moins"},
		{"TooShortAlnum", "Abc1", "12 caractères au moins"},
		{"Empty", "", "12 caractères au moins"},
		{"TwoClasses12", "abcdefgh1234", "trois types"},
		{"TwoClasses13", "abcdefgh12345", "trois types"},
		{"Alnum14", "kdmwpqrzvt4817", ""},
		{"AlnumUpper14", "KDMWPQRZVT4817", ""},
		{"FrenchWord", "Mademoiselle1", "trop facile à deviner"},
		{"LettersOnly14", "abcdefghijKLMN", "trois types"},
		{"LettersOnly20", "abcdefghijklmnopqrst", "trois types"},
		{"DigitsOnly14", "12345678901234", "trois types"},
		{"LowerSpecial14", "abcdefghijkl-!", "trois types"},
		{"Accent", "Abcdéfgh1234", "ASCII"},
		{"NonASCIISymbol", "Abcdefgh1234€", "ASCII"},
		{"Tab", "Abcdefgh\t1234", "ASCII"},
		{"DEL", "Abcdefgh1234\x7f", "ASCII"},
		{"ContainsLogin", "Xx-djouffre-xt-9", "identifiant"},
		{"ContainsLoginUpper", "Xx-DJOUFFRE-XT-9", "identifiant"},
		{"ContainsLastName", "Jouffre-2026-Ab", "nom"},
		{"ContainsFirstNameLower", "zz-denis-2026-Q", "nom"},
		{"UnrelatedWords", "Xyz-abcde-2026", ""},
		{"ContainsSIRET", "Ab-22940028800010", "SIRET"},
		{"ContainsSIREN", "Ab-229400288-x", "SIREN"},
		{"Max128", "Aa1-" + strings.Repeat("xq7Z", (pigp.MaxPasswordLength-4)/4), ""},
		{"Over128", "Aa1-" + strings.Repeat("x", pigp.MaxPasswordLength-3), "128 caractères au plus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pigp.CheckPassword(tt.password, login, name, []string{siret})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckPassword(%q) = %v, want nil", tt.password, err)
				}
				return
			}
			if pigp.ErrorCode(err) != pigp.EINVALID {
				t.Fatalf("CheckPassword(%q) = %v, want EINVALID", tt.password, err)
			}
			if msg := pigp.ErrorMessage(err); !strings.Contains(msg, tt.want) {
				t.Fatalf("CheckPassword(%q) message = %q, want it to mention %q", tt.password, msg, tt.want)
			}
		})
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range []int{0, 8, 12, 16, 16, 16, 32, 64} {
		p := pigp.GeneratePassword(n)
		want := max(n, 8)
		if len(p) != want {
			t.Fatalf("GeneratePassword(%d) = %q (%d chars), want %d chars", n, p, len(p), want)
		}
		var lower, upper, digit, special bool
		for _, r := range p {
			switch {
			case r < 0x21 || r > 0x7e:
				t.Fatalf("GeneratePassword(%d) = %q: character %q is not printable ASCII", n, p, r)
			case unicode.IsLower(r):
				lower = true
			case unicode.IsUpper(r):
				upper = true
			case unicode.IsDigit(r):
				digit = true
			default:
				special = true
			}
		}
		if !lower || !upper || !digit || !special {
			t.Fatalf("GeneratePassword(%d) = %q: lacks a class (lower %v, upper %v, digit %v, special %v)", n, p, lower, upper, digit, special)
		}
		if seen[p] {
			t.Fatalf("GeneratePassword returned %q twice", p)
		}
		seen[p] = true
		if n >= pigp.MinPasswordLength {
			login := "u" + strings.ToLower(pigp.NewID()[:10])
			if err := pigp.CheckPassword(p, login, "Denis Jouffre", []string{"22940028800010"}); err != nil {
				t.Fatalf("CheckPassword(GeneratePassword(%d) = %q) = %v", n, p, err)
			}
		}
	}
}

func validAccount() pigp.Account {
	return pigp.Account{
		Login: "djouffre-xt", Name: "Denis Jouffre", Email: "d@ex.fr",
		SIRETs: []string{"22940028800010"}, State: pigp.AccountActive,
	}
}

func TestAccount_Validate(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *pigp.Account)
		want   string // substring of the message, "" when valid
	}{
		{"OK", func(a *pigp.Account) {}, ""},
		{"Disabled", func(a *pigp.Account) { a.State = pigp.AccountDisabled }, ""},
		{"TwoSIRETs", func(a *pigp.Account) { a.SIRETs = append(a.SIRETs, "22750001100019") }, ""},
		{"LoginDots", func(a *pigp.Account) { a.Login = "d.jouffre_01" }, ""},
		{"LoginUpper", func(a *pigp.Account) { a.Login = "DJouffre" }, "identifiant"},
		{"LoginTooShort", func(a *pigp.Account) { a.Login = "dj" }, "identifiant"},
		{"LoginTooLong", func(a *pigp.Account) { a.Login = strings.Repeat("a", 65) }, "identifiant"},
		{"LoginEndsWithDash", func(a *pigp.Account) { a.Login = "djouffre-" }, "identifiant"},
		{"LoginSpace", func(a *pigp.Account) { a.Login = "d jouffre" }, "identifiant"},
		{"LoginSlash", func(a *pigp.Account) { a.Login = "../etc" }, "identifiant"},
		{"NoName", func(a *pigp.Account) { a.Name = " " }, "nom"},
		{"BadEmail", func(a *pigp.Account) { a.Email = "not-an-email" }, "adresse"},
		{"EmailWithDisplayName", func(a *pigp.Account) { a.Email = "Denis <d@ex.fr>" }, "adresse"},
		{"EmptyEmail", func(a *pigp.Account) { a.Email = "" }, "adresse"},
		{"NoSIRET", func(a *pigp.Account) { a.SIRETs = nil }, "au moins un SIRET"},
		{"BadSIRET", func(a *pigp.Account) { a.SIRETs = []string{"22940028800011"} }, "clé de contrôle"},
		{"BadState", func(a *pigp.Account) { a.State = "suspended" }, "état"},
		{"EmptyState", func(a *pigp.Account) { a.State = "" }, "état"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAccount()
			tt.change(&a)
			err := a.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if pigp.ErrorCode(err) != pigp.EINVALID {
				t.Fatalf("Validate() = %v, want EINVALID", err)
			}
			if msg := pigp.ErrorMessage(err); !strings.Contains(msg, tt.want) {
				t.Fatalf("Validate() message = %q, want it to mention %q", msg, tt.want)
			}
		})
	}
}

func TestPasswordExpiry(t *testing.T) {
	set := time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		months int
		want   time.Time
	}{
		{12, time.Date(2027, 1, 15, 10, 30, 0, 0, time.UTC)},
		{0, time.Date(2027, 1, 15, 10, 30, 0, 0, time.UTC)}, // default
		{-1, time.Date(2027, 1, 15, 10, 30, 0, 0, time.UTC)},
		{3, time.Date(2026, 4, 15, 10, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		if got := pigp.PasswordExpiry(set, tt.months); !got.Equal(tt.want) {
			t.Errorf("PasswordExpiry(%v, %d) = %v, want %v", set, tt.months, got, tt.want)
		}
	}
}

func TestAccount_PasswordExpired(t *testing.T) {
	exp := time.Date(2027, 1, 15, 10, 30, 0, 0, time.UTC)
	a := pigp.Account{PasswordExpiresAt: exp}
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"DayBefore", exp.AddDate(0, 0, -1), false},
		{"NanosecondBefore", exp.Add(-time.Nanosecond), false},
		{"AtExpiry", exp, true},
		{"After", exp.Add(time.Second), true},
		{"OtherZoneSameInstant", exp.In(time.FixedZone("CET", 3600)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.PasswordExpired(tt.now); got != tt.want {
				t.Fatalf("PasswordExpired(%v) = %v, want %v", tt.now, got, tt.want)
			}
		})
	}
}

func authorizedKey(tb testing.TB, pub any, comment string) []byte {
	tb.Helper()
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	if comment != "" {
		line += " " + comment
	}
	return []byte(line + "\n")
}

func TestParseSSHKey(t *testing.T) {
	t.Run("Ed25519", func(t *testing.T) {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		line := authorizedKey(t, pub, "denis@poste")
		k, err := pigp.ParseSSHKey(line)
		if err != nil {
			t.Fatalf("ParseSSHKey: %v", err)
		}
		pk, _ := ssh.NewPublicKey(pub)
		if want := ssh.FingerprintSHA256(pk); k.Fingerprint != want {
			t.Fatalf("Fingerprint = %q, want %q", k.Fingerprint, want)
		}
		if !strings.HasPrefix(k.Fingerprint, "SHA256:") {
			t.Fatalf("Fingerprint = %q, want SHA256:…", k.Fingerprint)
		}
		if k.Comment != "denis@poste" {
			t.Fatalf("Comment = %q, want %q", k.Comment, "denis@poste")
		}
		if want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))); k.PublicKey != want {
			t.Fatalf("PublicKey = %q, want %q", k.PublicKey, want)
		}
	})
	t.Run("ECDSA", func(t *testing.T) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pigp.ParseSSHKey(authorizedKey(t, &priv.PublicKey, "")); err != nil {
			t.Fatalf("ParseSSHKey(ecdsa-p256): %v", err)
		}
	})
	t.Run("Garbage", func(t *testing.T) {
		for _, line := range []string{"", "hello", "ssh-ed25519 !!!notbase64", "ssh-ed25519 AAAA"} {
			_, err := pigp.ParseSSHKey([]byte(line))
			if pigp.ErrorCode(err) != pigp.EINVALID {
				t.Errorf("ParseSSHKey(%q) = %v, want EINVALID", line, err)
			}
			if msg := pigp.ErrorMessage(err); !strings.Contains(msg, "authorized_keys") {
				t.Errorf("ParseSSHKey(%q) message = %q, want it to mention authorized_keys", line, msg)
			}
		}
	})
	t.Run("RSA", func(t *testing.T) {
		tests := []struct {
			bits int
			ok   bool
		}{
			{2048, false},
			{3072, true},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprint(tt.bits), func(t *testing.T) {
				priv, err := rsa.GenerateKey(rand.Reader, tt.bits)
				if err != nil {
					t.Fatal(err)
				}
				_, err = pigp.ParseSSHKey(authorizedKey(t, &priv.PublicKey, ""))
				if tt.ok && err != nil {
					t.Fatalf("ParseSSHKey(RSA %d) = %v, want nil", tt.bits, err)
				}
				if !tt.ok {
					if pigp.ErrorCode(err) != pigp.EINVALID || !strings.Contains(pigp.ErrorMessage(err), "3072") {
						t.Fatalf("ParseSSHKey(RSA %d) = %v, want EINVALID mentioning 3072", tt.bits, err)
					}
				}
			})
		}
	})
}

func TestError(t *testing.T) {
	const generic = "Erreur interne du serveur. Réessayez plus tard ou contactez l'assistance."
	secret := errors.New("dial tcp 10.0.0.5:5432: password authentication failed for user pigp")
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"Nil", nil, "", ""},
		{"Plain", secret, pigp.EINTERNAL, generic},
		{"Wrapped", fmt.Errorf("list deposits: %w", secret), pigp.EINTERNAL, generic},
		{"Domain", pigp.Errorf(pigp.ENOTFOUND, "fichier %s introuvable", "x.xml"), pigp.ENOTFOUND, "fichier x.xml introuvable"},
		{"DomainWrapped", fmt.Errorf("ctx: %w", pigp.Errorf(pigp.EFORBIDDEN, "refusé")), pigp.EFORBIDDEN, "refusé"},
		{"WrapErrorHidesCause", pigp.WrapError(pigp.EINVALID, "clé illisible", secret), pigp.EINVALID, "clé illisible"},
		{"InternalWithMessage", pigp.Errorf(pigp.EINTERNAL, "SELECT * FROM accounts failed"), pigp.EINTERNAL, generic},
		{"InternalWrap", pigp.WrapError(pigp.EINTERNAL, "oops", secret), pigp.EINTERNAL, generic},
		{"EmptyMessage", &pigp.Error{Code: pigp.ECONFLICT}, pigp.ECONFLICT, generic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pigp.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			got := pigp.ErrorMessage(tt.err)
			if got != tt.wantMsg {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMsg)
			}
			if strings.Contains(got, "10.0.0.5") || strings.Contains(got, "SELECT") {
				t.Errorf("ErrorMessage leaks internal text: %q", got)
			}
		})
	}

	t.Run("ErrorStringAndUnwrap", func(t *testing.T) {
		e := pigp.WrapError(pigp.EINVALID, "clé illisible", secret)
		if !errors.Is(e, secret) {
			t.Error("errors.Is(WrapError(…, cause), cause) = false")
		}
		if got, want := e.Error(), "invalid: clé illisible: "+secret.Error(); got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if got, want := pigp.Errorf(pigp.ENOTFOUND, "absent").Error(), "not_found: absent"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if got, want := (&pigp.Error{Code: pigp.EINTERNAL, Err: secret}).Error(), "internal: "+secret.Error(); got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})
}

func TestInternalName(t *testing.T) {
	got := pigp.InternalName("2026_22940028800010_20261128101500.xml", "22940028800010")
	if want := "2026_22940028800010_20261128101500.xml.22940028800010"; got != want {
		t.Fatalf("InternalName = %q, want %q", got, want)
	}
}

func TestResponse_Visible(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		state string
		exp   time.Time
		want  bool
	}{
		{"Available", pigp.ResponseAvailable, now.Add(time.Hour), true},
		{"AtExpiry", pigp.ResponseAvailable, now, false},
		{"Expired", pigp.ResponseAvailable, now.Add(-time.Hour), false},
		{"Removed", pigp.ResponseRemoved, now.Add(time.Hour), false},
		{"ExpiredState", pigp.ResponseExpired, now.Add(time.Hour), false},
	}
	for _, tt := range tests {
		r := pigp.Response{State: tt.state, ExpiresAt: tt.exp}
		if got := r.Visible(now); got != tt.want {
			t.Errorf("%s: Visible = %v, want %v", tt.name, got, tt.want)
		}
	}
}
