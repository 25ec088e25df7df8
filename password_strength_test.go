package pigp_test

import (
	"strings"
	"testing"

	"github.com/trustelem/zxcvbn"

	"github.com/pigp/pigp"
)

func TestPasswordStrengthFrench(t *testing.T) {
	// French words that zxcvbn's English lists miss are guessed quickly.
	for _, pw := range []string{"Mademoiselle1", "Chaussette-12", "ellesiomedam1", "Gr3nouille99"} {
		en := zxcvbn.PasswordStrength(pw, nil).Score
		fr := pigp.PasswordStrength(pw).Score
		if fr >= pigp.MinPasswordScore || fr > en {
			t.Errorf("PasswordStrength(%q) = %d (English only %d), want < %d", pw, fr, en, pigp.MinPasswordScore)
		}
	}
	for _, pw := range []string{"Velo-Rouge-Pluie-42", "Tr0ub4dor&3xyz", "kT7#pq2!Lm9z"} {
		if s := pigp.PasswordStrength(pw); s.Score < pigp.MinPasswordScore {
			t.Errorf("PasswordStrength(%q) = %d, want ≥ %d", pw, s.Score, pigp.MinPasswordScore)
		}
	}
	// Personal words count as the easiest guesses.
	if a, b := pigp.PasswordStrength("Jouffre!2031x"), pigp.PasswordStrength("Jouffre!2031x", pigp.StrengthInputs("djouffre-xt", "Denis Jouffre", nil)...); b.Guesses >= a.Guesses {
		t.Errorf("user inputs did not lower the estimate: %g then %g", a.Guesses, b.Guesses)
	}
	if got := (pigp.Strength{Score: 3}).Label(); got != "fort" {
		t.Errorf("Label(3) = %q, want fort", got)
	}
}

func TestCheckPasswordStrength(t *testing.T) {
	for _, pw := range []string{"abcdefgh12-!", "abcdefgh123456", "Mademoiselle1", "Aa1-" + strings.Repeat("x", 60)} {
		err := pigp.CheckPassword(pw, "djouffre-xt", "Denis Jouffre", []string{"22940028800010"})
		if pigp.ErrorCode(err) != pigp.EINVALID || !strings.Contains(pigp.ErrorMessage(err), "trop facile à deviner") ||
			!strings.Contains(pigp.ErrorMessage(err), "« fort »") {
			t.Errorf("CheckPassword(%q) = %v, want a refusal naming the strength rule", pw, err)
		}
	}
	for range 50 {
		if pw := pigp.GeneratePassword(16); pigp.CheckPassword(pw, "u123-xt", "Denis Jouffre", []string{"22940028800010"}) != nil {
			t.Errorf("generated password %q refused", pw)
		}
	}
}
