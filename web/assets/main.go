// Command assets copies the third-party front-end files the project embeds
// from the npm packages pinned in web/assets/package.json (installed with
// `npm ci --prefix web/assets`). It is run by go generate, never at build
// time, and its output is committed so that builds work offline:
//
//   - with -dsfr DIR (from `go generate ./web`): the subset of the État's
//     design system (@gouvfr/dsfr) the portal uses: dsfr.min.css, the module
//     and nomodule scripts, the woff2 fonts, the favicons, the SVG icons the
//     CSS refers to, plus icons.min.css with the rules of the few utility
//     icons the templates use (the full utility CSS weighs 15 MB);
//   - with -words FILE (from `go generate .` at the root): the French
//     dictionaries of @zxcvbn-ts/language-fr (frequency-ranked common words
//     from OpenSubtitles and French Wikipedia, first and last names), folded
//     to lower-case ASCII, gzipped, for pigp.PasswordStrength.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// utilityIcons are the DSFR icon classes the templates use beyond those of
// dsfr.min.css.
var utilityIcons = []string{
	"fr-icon-download-line", "fr-icon-upload-line", "fr-icon-logout-box-r-line", "fr-icon-lock-line",
	"fr-icon-question-line", "fr-icon-customer-service-line", "fr-icon-file-text-line", "fr-icon-time-line",
	"fr-icon-warning-line", "fr-icon-account-circle-line", "fr-icon-book-2-line", "fr-icon-error-warning-line",
}

func main() {
	modules := flag.String("modules", "assets/node_modules", "node_modules directory of web/assets")
	dsfr := flag.String("dsfr", "", "copy the DSFR subset into this directory")
	words := flag.String("words", "", "write the gzipped French word lists to this file")
	flag.Parse()
	if _, err := os.Stat(*modules); err != nil {
		log.Fatalf("%v (run `npm ci --prefix web/assets` first)", err)
	}
	if *dsfr != "" {
		if err := copyDSFR(filepath.Join(*modules, "@gouvfr", "dsfr"), *dsfr); err != nil {
			log.Fatal(err)
		}
	}
	if *words != "" {
		if err := writeWords(filepath.Join(*modules, "@zxcvbn-ts", "language-fr", "src"), *words); err != nil {
			log.Fatal(err)
		}
	}
}

var iconURL = regexp.MustCompile(`url\((?:\.\./\.\./)?(icons/[a-z0-9-]+/[a-z0-9_-]+\.svg)\)`)

func copyDSFR(pkg, out string) error {
	dist := filepath.Join(pkg, "dist")
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	copyFile := func(rel string) error {
		b, err := os.ReadFile(filepath.Join(dist, rel))
		if err != nil {
			return err
		}
		dst := filepath.Join(out, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	}
	for _, f := range []string{"dsfr.min.css", "dsfr.module.min.js", "dsfr.nomodule.min.js",
		"favicon/favicon.ico", "favicon/favicon.svg", "favicon/apple-touch-icon.png"} {
		if err := copyFile(f); err != nil {
			return err
		}
	}
	lic, err := os.ReadFile(filepath.Join(pkg, "LICENSE.md"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "LICENSE.md"), lic, 0o644); err != nil {
		return err
	}
	fonts, err := filepath.Glob(filepath.Join(dist, "fonts", "*.woff2"))
	if err != nil {
		return err
	}
	for _, f := range fonts {
		if err := copyFile(filepath.Join("fonts", filepath.Base(f))); err != nil {
			return err
		}
	}
	css, err := os.ReadFile(filepath.Join(dist, "dsfr.min.css"))
	if err != nil {
		return err
	}
	icons := map[string]bool{}
	for _, m := range iconURL.FindAllSubmatch(css, -1) {
		icons[string(m[1])] = true
	}
	// The rules of the utility icons, rewritten to point next to dsfr.min.css.
	util, err := os.ReadFile(filepath.Join(dist, "utility", "icons", "icons.min.css"))
	if err != nil {
		return err
	}
	var extra bytes.Buffer
	for _, class := range utilityIcons {
		re := regexp.MustCompile(`\.` + regexp.QuoteMeta(class) + `:after,\.` + regexp.QuoteMeta(class) + `:before\{[^}]*\}`)
		rule := re.Find(util)
		if rule == nil {
			return fmt.Errorf("icon class %s not found in utility/icons/icons.min.css", class)
		}
		for _, m := range iconURL.FindAllSubmatch(rule, -1) {
			icons[string(m[1])] = true
		}
		extra.Write(bytes.ReplaceAll(rule, []byte("../../icons/"), []byte("icons/")))
		extra.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(out, "icons.min.css"), extra.Bytes(), 0o644); err != nil {
		return err
	}
	var names []string
	for n := range icons {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := copyFile(n); err != nil {
			return err
		}
	}
	fmt.Printf("dsfr: %d fonts, %d icons copied to %s\n", len(fonts), len(names), out)
	return nil
}

// wordLists are the dictionaries of @zxcvbn-ts/language-fr, each ranked
// by its order in the file (frequency for words, as published for names).
var wordLists = []struct{ name, file string }{
	{"mots-courants", "commonWords.json"},
	{"wikipedia", "wikipedia.json"},
	{"noms", "firstnames.json"}, // the package's "firstnames" holds last names
	{"prenoms", "lastnames.json"},
}

// fold returns w in lower case without diacritics; ok is false when the
// result is not made of ASCII letters (passwords are printable ASCII).
func fold(w string) (string, bool) {
	var b strings.Builder
	for _, r := range norm.NFD.String(strings.ToLower(w)) {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r)
		case r == 'œ':
			b.WriteString("oe")
		case r == 'æ':
			b.WriteString("ae")
		case r >= 0x300 && r <= 0x36f: // combining accents
		case r == '-' || r == '\'':
		default:
			return "", false
		}
	}
	return b.String(), b.Len() >= 3
}

func writeWords(src, out string) error {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	fmt.Fprintln(zw, "# French dictionaries for pigp.PasswordStrength, generated by web/assets from")
	fmt.Fprintln(zw, "# @zxcvbn-ts/language-fr 4.1.2 (MIT; common words derived from OpenSubtitles via OPUS, ODC-BY).")
	total := 0
	for _, l := range wordLists {
		b, err := os.ReadFile(filepath.Join(src, l.file))
		if err != nil {
			return err
		}
		var words []string
		if err := json.Unmarshal(b, &words); err != nil {
			return fmt.Errorf("%s: %w", l.file, err)
		}
		fmt.Fprintf(zw, "[%s]\n", l.name)
		seen := map[string]bool{}
		for _, w := range words {
			f, ok := fold(w)
			if !ok || seen[f] {
				continue
			}
			seen[f] = true
			fmt.Fprintln(zw, f)
			total++
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("words: %d words written to %s (%d bytes)\n", total, out, buf.Len())
	return nil
}
