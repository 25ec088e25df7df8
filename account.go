package pigp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/ssh"
)

// Account states.
const (
	AccountActive   = "active"
	AccountDisabled = "disabled"
)

// DefaultPasswordValidity is how long a password stays valid after it is set.
const DefaultPasswordValidity = 12 // months

// Account is a person (or a batch tool) who logs in and acts for one or
// more organisations.
type Account struct {
	ID                int64
	Login             string
	Civility          string // CivilityMr, CivilityMme or "" (not given)
	Name              string
	Email             string
	SIRETs            []string
	PasswordHash      string // argon2id PHC string
	PasswordSetAt     time.Time
	PasswordExpiresAt time.Time
	PasswordTemporary bool // set by an operator reset: must be changed at next login
	State             string
	CreatedAt         time.Time
	// Source is SourceLocal ("" means local too) or SourceLDAP: a shadow
	// row of a directory agent, whose password pigp never holds.
	Source string
	// DirectoryDN is the agent's entry in the directory (SourceLDAP only).
	DirectoryDN string
	// LastSeenAt is the agent's last successful directory login (zero if never).
	LastSeenAt time.Time
}

// FromDirectory reports whether the account is a directory agent's shadow row.
func (a *Account) FromDirectory() bool { return a.Source == SourceLDAP }

// Civilities an account may have, shown before the name as the portal does
// ("MR DENIS JOUFFRE").
const (
	CivilityMr  = "MR"
	CivilityMme = "MME"
)

// ParseCivility accepts MR or MME in any case (and M., MONSIEUR, MADAME as
// their long forms); "" stays "" (no civility).
func ParseCivility(s string) (string, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case "MR", "M", "M.", "MONSIEUR":
		return CivilityMr, nil
	case "MME", "MADAME":
		return CivilityMme, nil
	}
	return "", Errorf(EINVALID, "civilité %q invalide : MR ou MME", s)
}

var loginRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$`)

// Validate checks an account before it is stored.
func (a *Account) Validate() error {
	if !loginRE.MatchString(a.Login) {
		return Errorf(EINVALID, "identifiant %q invalide : 3 à 64 caractères parmi a-z, 0-9, point, tiret et souligné, commençant et finissant par une lettre ou un chiffre", a.Login)
	}
	if a.Civility != "" && a.Civility != CivilityMr && a.Civility != CivilityMme {
		return Errorf(EINVALID, "civilité %q invalide : MR ou MME", a.Civility)
	}
	if strings.TrimSpace(a.Name) == "" || len([]rune(a.Name)) > 200 {
		return Errorf(EINVALID, "le nom affiché est obligatoire (200 caractères au plus)")
	}
	if a.Source == SourceLDAP && a.Email == "" {
		// A directory entry without an e-mail address: the agent gets no
		// notification, nothing else changes.
	} else if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email || len(a.Email) > 254 {
		return Errorf(EINVALID, "adresse électronique %q invalide", a.Email)
	}
	if len(a.SIRETs) == 0 {
		return Errorf(EINVALID, "le compte doit agir pour au moins un SIRET")
	}
	for _, s := range a.SIRETs {
		if err := ValidateSIRET(s); err != nil {
			return err
		}
	}
	switch a.State {
	case AccountActive, AccountDisabled:
	default:
		return Errorf(EINVALID, "état de compte %q inconnu", a.State)
	}
	switch a.Source {
	case "", SourceLocal, SourceLDAP:
	default:
		return Errorf(EINVALID, "origine de compte %q inconnue", a.Source)
	}
	if len(a.DirectoryDN) > 1000 {
		return Errorf(EINVALID, "le DN de l'annuaire dépasse 1000 caractères")
	}
	return nil
}

// DirectoryLogin returns the shadow-row login of a directory login: lower
// case, with the shape of every pigp login (letters, digits, point, dash,
// underscore). A login of another shape cannot have a shadow row.
func DirectoryLogin(login string) (string, error) {
	l := strings.ToLower(login)
	if !loginRE.MatchString(l) {
		return "", Errorf(EINVALID, "identifiant d'annuaire %q hors du format des identifiants pigp", login)
	}
	return l, nil
}

// PasswordExpired reports whether the account's password has expired at now.
func (a *Account) PasswordExpired(now time.Time) bool {
	return !now.Before(a.PasswordExpiresAt)
}

// PasswordExpiry returns when a password set at setAt expires.
func PasswordExpiry(setAt time.Time, months int) time.Time {
	if months <= 0 {
		months = DefaultPasswordValidity
	}
	return setAt.AddDate(0, months, 0)
}

// argon2id parameters (OWASP's first recommended set: m=19 MiB, t=2, p=1).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MaxPasswordLength bounds the hashing cost of a submitted password.
const MaxPasswordLength = 128

// HashPassword returns the argon2id PHC string of password with a fresh
// random salt.
func HashPassword(password string) (string, error) {
	if len(password) > MaxPasswordLength {
		return "", Errorf(EINVALID, "le mot de passe dépasse %d caractères", MaxPasswordLength)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// dummyHash is verified against when an account does not exist, so that an
// unknown login costs the same time as a known one.
// It is computed on first use, not at start-up: argon2id takes 19 MiB, which
// commands that never check a password should not pay.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("pigp-dummy-password-for-timing-parity")
	if err != nil {
		panic(err)
	}
	return h
})

// ErrPasswordNotChecked is the cause of an EUNAUTHORIZED refusal given
// without looking at the password (too many password checks were waiting):
// the answer is the one of a wrong password, but the brute-force guard does
// not count it as a guess.
var ErrPasswordNotChecked = errors.New("password not checked: too many password checks at once")

// VerifyPassword reports whether password matches the PHC string hash. An
// empty hash is verified against a dummy hash (same cost) and never matches.
func VerifyPassword(hash, password string) bool {
	if len(password) > MaxPasswordLength {
		return false
	}
	if hash == "" {
		verifyPHC(dummyHash(), password)
		return false
	}
	return verifyPHC(hash, password)
}

func verifyPHC(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 10 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// GeneratePassword returns a random password of n characters drawn from
// letters, digits and a few unambiguous special characters, with at least
// one of each class.
func GeneratePassword(n int) string {
	const (
		lower   = "abcdefghijkmnopqrstuvwxyz"
		upper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		digits  = "23456789"
		special = "-_.!+=%"
	)
	if n < 8 {
		n = 8
	}
	all := lower + upper + digits + special
	pick := func(set string) byte {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			panic("pigp: crypto/rand failed: " + err.Error())
		}
		return set[i.Int64()]
	}
	b := []byte{pick(lower), pick(upper), pick(digits), pick(special)}
	for len(b) < n {
		b = append(b, pick(all))
	}
	for i := len(b) - 1; i > 0; i-- { // Fisher–Yates with crypto/rand
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		b[i], b[j.Int64()] = b[j.Int64()], b[i]
	}
	return string(b)
}

// SSHKey is a public key an account may log in with.
type SSHKey struct {
	ID          int64
	AccountID   int64
	Fingerprint string // SHA256:… as printed by ssh-keygen -l
	PublicKey   string // authorized_keys line
	Comment     string
	CreatedAt   time.Time
}

// ParseSSHKey parses one authorized_keys line into an SSHKey.
func ParseSSHKey(line []byte) (*SSHKey, error) {
	pk, comment, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return nil, WrapError(EINVALID, "clé publique SSH illisible (format authorized_keys attendu)", err)
	}
	switch pk.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
	case ssh.KeyAlgoRSA:
		if cpk, ok := pk.(ssh.CryptoPublicKey); ok {
			if rk, ok := cpk.CryptoPublicKey().(interface{ Size() int }); ok && rk.Size()*8 < 3072 {
				return nil, Errorf(EINVALID, "clé RSA trop courte : 3072 bits au moins")
			}
		}
	default:
		return nil, Errorf(EINVALID, "type de clé %s refusé : utilisez ed25519, ECDSA ou RSA ≥ 3072 bits", pk.Type())
	}
	return &SSHKey{
		Fingerprint: ssh.FingerprintSHA256(pk),
		PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))),
		Comment:     comment,
	}, nil
}

// maxLoginLength bounds the login kept in the guard's counters and the
// audit trail. No account has a longer one (pigp logins have 64
// characters at most, and so do directory logins, which get a shadow row).
const maxLoginLength = 254

// NormalizeLogin returns the form of a login that accounts, the guard and
// the audit trail use: trimmed, lower case, at most maxLoginLength bytes
// of valid UTF-8.
// An SSH user name and the portal's form field give the same login.
func NormalizeLogin(login string) string {
	l := strings.ToLower(strings.TrimSpace(strings.ToValidUTF8(login, "")))
	if len(l) > maxLoginLength {
		l = l[:maxLoginLength]
	}
	return strings.ToValidUTF8(l, "")
}
