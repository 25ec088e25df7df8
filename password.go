package pigp

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// MinPasswordLength is the shortest password accepted with three character
// classes; MinAlnumPasswordLength the shortest made of letters and digits
// only (CNIL délibération 2022-100, case 1 examples).
const (
	MinPasswordLength      = 12
	MinAlnumPasswordLength = 14
)

// PasswordHistory is how many previous passwords a new one may not repeat.
const PasswordHistory = 5

// PasswordChangeWindow is how long before its expiry a password is changed
// at login: SSH keyboard-interactive asks for a new one, the portal leads
// to its change page (Caller.PasswordChangeDue).
const PasswordChangeWindow = 7 * 24 * time.Hour

// PasswordPolicyText is the password policy in one French sentence, for
// the places that cannot show the portal's list of rules (the SSH
// keyboard-interactive prompts). CheckPassword is the policy itself.
var PasswordPolicyText = fmt.Sprintf("Au moins %d caractères de trois types (minuscules, majuscules, chiffres, caractères spéciaux) "+
	"ou %d lettres et chiffres, sans accent, sans votre identifiant ni votre nom, différent des %d derniers.",
	MinPasswordLength, MinAlnumPasswordLength, PasswordHistory)

// CheckPassword applies the password policy that does not need history:
// length, printable ASCII, character classes, not containing the login,
// the name or a SIRET, and a strength of at least MinPasswordScore as
// estimated by PasswordStrength (zxcvbn with French dictionaries). Each
// refusal is an EINVALID error that names the rule, in French. It is the
// one policy of the CLI, the exchange (SFTP) and the portal.
func CheckPassword(password, login, name string, sirets []string) error {
	if len(password) > MaxPasswordLength {
		return Errorf(EINVALID, "mot de passe refusé : %d caractères au plus", MaxPasswordLength)
	}
	var lower, upper, digit, special bool
	for _, r := range password {
		switch {
		case r < 0x20 || r > 0x7e:
			return Errorf(EINVALID, "mot de passe refusé : seuls les caractères ASCII imprimables sont acceptés (pas de lettres accentuées)")
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
	classes := 0
	for _, b := range []bool{lower, upper, digit, special} {
		if b {
			classes++
		}
	}
	switch {
	case len(password) < MinPasswordLength:
		return Errorf(EINVALID, "mot de passe refusé : %d caractères au moins", MinPasswordLength)
	case classes < 3 && !(len(password) >= MinAlnumPasswordLength && !special && (lower || upper) && digit):
		return Errorf(EINVALID, "mot de passe refusé : il faut au moins trois types de caractères parmi minuscules, majuscules, chiffres et caractères spéciaux (ou %d lettres et chiffres au moins)", MinAlnumPasswordLength)
	}
	lp := strings.ToLower(password)
	if login != "" && strings.Contains(lp, strings.ToLower(login)) {
		return Errorf(EINVALID, "mot de passe refusé : il ne doit pas contenir l'identifiant")
	}
	for _, part := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if len(part) >= 4 && strings.Contains(lp, part) {
			return Errorf(EINVALID, "mot de passe refusé : il ne doit pas contenir le nom de l'utilisateur")
		}
	}
	for _, s := range sirets {
		if s != "" && (strings.Contains(password, s) || len(s) == 14 && strings.Contains(password, s[:9])) {
			return Errorf(EINVALID, "mot de passe refusé : il ne doit pas contenir le SIRET ni le SIREN")
		}
	}
	if s := PasswordStrength(password, StrengthInputs(login, name, sirets)...); s.Score < MinPasswordScore {
		return Errorf(EINVALID, "mot de passe refusé : trop facile à deviner (niveau de sécurité « %s », il faut au moins « %s ») ; "+
			"évitez les mots du dictionnaire, les prénoms et les noms, les suites de caractères (abcd, 1234, azerty) et les dates",
			s.Label(), strengthLabels[MinPasswordScore])
	}
	return nil
}
