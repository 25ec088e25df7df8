package pigp

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"strings"
	"sync"

	"github.com/trustelem/zxcvbn/match"
	"github.com/trustelem/zxcvbn/matching"
	"github.com/trustelem/zxcvbn/scoring"
)

// The French dictionaries are generated from the npm package
// @zxcvbn-ts/language-fr (pinned in web/assets/package.json) after
// `npm ci --prefix web/assets`.
//
//go:generate go run ./web/assets -modules web/assets/node_modules -words dict/fr.txt.gz

//go:embed dict/fr.txt.gz
var frenchWordsGz []byte

// MinPasswordScore is the lowest strength score (0 to 4) a new password
// must reach.
const MinPasswordScore = 3

// strengthLabels name the scores in French, as the portal shows them.
var strengthLabels = [...]string{"très faible", "faible", "moyen", "fort", "très fort"}

// Strength is the estimated resistance of a password to guessing.
type Strength struct {
	// Score goes from 0 (guessed at once) to 4 (very hard to guess).
	Score int
	// Guesses is the estimated number of guesses needed.
	Guesses float64
}

// Label returns the French name of the score ("faible", "fort", …).
func (s Strength) Label() string { return strengthLabels[min(max(s.Score, 0), 4)] }

// PasswordStrength estimates password with zxcvbn (English dictionaries,
// keyboard patterns, sequences, repeats, dates) completed with French
// dictionaries — common words, Wikipedia words, first and last names,
// without their accents since passwords are ASCII — and with userInputs:
// the login, the name, the SIRETs and the words of the service, which
// count as the easiest guesses of all.
func PasswordStrength(password string, userInputs ...string) Strength {
	if password == "" {
		return Strength{}
	}
	inputs := append([]string{"pigp", "dgfip", "apa", "portail", "gestion", "publique", "finances", "departement",
		"conseil", "allocation", "autonomie", "motdepasse", "password", "azerty", "bonjour", "soleil"}, userInputs...)
	matches := matching.Omnimatch(password, inputs)
	matches = append(matches, frenchMatches(password)...)
	match.Sort(matches)
	seq := scoring.MostGuessableMatchSequence(password, matches, false)
	return Strength{Score: guessesToScore(seq.Guesses), Guesses: seq.Guesses}
}

// StrengthInputs returns the personal words of an account that its password
// should not rely on, for PasswordStrength.
func StrengthInputs(login, name string, sirets []string) []string {
	in := []string{login}
	in = append(in, strings.FieldsFunc(login, func(r rune) bool { return r == '-' || r == '.' || r == '_' })...)
	in = append(in, strings.Fields(name)...)
	for _, s := range sirets {
		in = append(in, s)
		if len(s) == 14 {
			in = append(in, s[:9])
		}
	}
	return in
}

// guessesToScore is zxcvbn's scale: under 10³ guesses is 0, 10⁶ is 1,
// 10⁸ is 2, 10¹⁰ is 3, more is 4.
func guessesToScore(guesses float64) int {
	const delta = 5
	switch {
	case guesses < 1e3+delta:
		return 0
	case guesses < 1e6+delta:
		return 1
	case guesses < 1e8+delta:
		return 2
	case guesses < 1e10+delta:
		return 3
	default:
		return 4
	}
}

// frenchDicts returns the embedded French dictionaries, each a word → rank
// map. They are immutable once loaded.
var frenchDicts = sync.OnceValue(func() map[string]map[string]int {
	zr, err := gzip.NewReader(bytes.NewReader(frenchWordsGz))
	if err != nil {
		panic("pigp: embedded French dictionary: " + err.Error())
	}
	dicts := map[string]map[string]int{}
	var cur map[string]int
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			cur = map[string]int{}
			dicts[strings.Trim(line, "[]")+"-fr"] = cur
		case cur != nil:
			if _, dup := cur[line]; !dup {
				cur[line] = len(cur) + 1
			}
		}
	}
	if err := sc.Err(); err != nil {
		panic("pigp: embedded French dictionary: " + err.Error())
	}
	return dicts
})

// l33tFrench undoes the usual character substitutions before the French
// dictionaries are searched.
var l33tFrench = map[byte]byte{'4': 'a', '@': 'a', '8': 'b', '3': 'e', '6': 'g', '1': 'i', '!': 'i', '0': 'o', '5': 's', '$': 's', '7': 't', '2': 'z'}

// frenchMatches finds the words of the French dictionaries in password,
// forwards, reversed and with l33t substitutions undone, as zxcvbn's own
// dictionary matchers do for its English lists.
func frenchMatches(password string) []*match.Match {
	lower := strings.ToLower(password)
	if len(lower) != len(password) { // non-ASCII case folding changed lengths: skip
		return nil
	}
	var out []*match.Match
	find := func(text string, fn func(i, j int, word string, rank int, dict string)) {
		for dict, words := range frenchDicts() {
			for i := 0; i < len(text); i++ {
				for j := i + 2; j < len(text); j++ { // words of 3 letters or more
					if rank, ok := words[text[i:j+1]]; ok {
						fn(i, j, text[i:j+1], rank, dict)
					}
				}
			}
		}
	}
	find(lower, func(i, j int, word string, rank int, dict string) {
		out = append(out, &match.Match{Pattern: "dictionary", I: i, J: j, Token: password[i : j+1],
			MatchedWord: word, Rank: rank, DictionaryName: dict})
	})
	n := len(lower)
	rev := reverseASCII(lower)
	find(rev, func(i, j int, word string, rank int, dict string) {
		out = append(out, &match.Match{Pattern: "dictionary", I: n - 1 - j, J: n - 1 - i,
			Token: password[n-1-j : n-i], MatchedWord: word, Rank: rank, DictionaryName: dict, Reversed: true})
	})
	unleet := []byte(lower)
	changed := false
	for k, c := range unleet {
		if r, ok := l33tFrench[c]; ok {
			unleet[k], changed = r, true
		}
	}
	if changed {
		find(string(unleet), func(i, j int, word string, rank int, dict string) {
			token := password[i : j+1]
			if strings.ToLower(token) == word {
				return // no substitution inside this word: already found
			}
			sub := map[string]string{}
			for k := i; k <= j; k++ {
				if r, ok := l33tFrench[lower[k]]; ok {
					sub[string(lower[k])] = string(r)
				}
			}
			out = append(out, &match.Match{Pattern: "dictionary", I: i, J: j, Token: token,
				MatchedWord: word, Rank: rank, DictionaryName: dict, L33t: true, Sub: sub})
		})
	}
	return out
}

func reverseASCII(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}
