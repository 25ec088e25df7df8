package apa

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"
)

// The scanner is a small streaming XML 1.0 tokenizer written for the APA
// files. encoding/xml tokenizes at about 30 MB/s and allocates for every
// token; this one reuses its buffers and checks well-formedness as it goes.
// It supports exactly what the contract allows: an optional XML declaration
// (UTF-8, ISO-8859-1 or ISO-8859-15), elements, attributes, comments,
// processing instructions, CDATA sections, the five predefined entities and
// character references. A document type declaration is refused, so no
// entity is ever defined or expanded and nothing is ever fetched.

const (
	scanBufSize = 64 << 10 // initial read buffer
	maxMarkup   = 1 << 20  // longest start tag, end tag or XML declaration
	maxDepth    = 256      // deepest element nesting (libxml2's default too)
	maxText     = 1024     // bytes of text kept per token; longer values are invalid anyway
	maxRef      = 64       // longest entity or character reference
	maxName     = 1000     // longest element name, in bytes
	maxAttrs    = 64       // most attributes on one element
)

type tokenKind uint8

const (
	tokStart tokenKind = iota + 1
	tokEnd
	tokText
	tokEOF
)

// attr is an attribute of the current start tag; both slices are valid until
// the next call to next.
type attr struct {
	name, value []byte
}

// syntaxError is a fatal error of the document itself (E001, E002, E010), as
// opposed to an error reading it.
type syntaxError struct {
	code      string
	msg       string // French, never echoes document content
	line, col int
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("%s line %d column %d: %s", e.code, e.line, e.col, e.msg)
}

var errMarkupTooLong = errors.New("markup too long")

type scanner struct {
	src  io.Reader
	buf  []byte
	r, w int
	eof  bool

	line, col int // position of buf[r], 1-based, columns in characters

	// Current token, valid until the next call to next.
	name      []byte
	attrs     []attr
	attrBuf   []byte
	text      []byte // decoded text, at most maxText bytes
	textLong  bool   // the text was longer than maxText
	textSpace bool   // the text was only literal white space
	selfClose bool
	tokLine   int
	tokCol    int

	stack      []byte // names of the open elements, end to end
	offs       []int  // start of each name in stack
	pendingEnd bool
	rootSeen   bool
	started    bool
	nonSpace   bool // anything but white space was seen (E010)
	encoding   string
}

func newScanner(r io.Reader) *scanner {
	return &scanner{src: r, buf: make([]byte, scanBufSize), line: 1, col: 1}
}

func (s *scanner) errorf(code, format string, args ...any) *syntaxError {
	return &syntaxError{code: code, msg: fmt.Sprintf(format, args...), line: s.line, col: s.col}
}

func (s *scanner) malformed(format string, args ...any) *syntaxError {
	return s.errorf(CodeMalformed, "XML mal formé : "+format, args...)
}

// more reads more input after compacting the buffer; it grows the buffer up
// to maxMarkup when it is full. At end of input it sets s.eof.
func (s *scanner) more() error {
	if s.eof {
		return nil
	}
	if s.r > 0 {
		copy(s.buf, s.buf[s.r:s.w])
		s.w -= s.r
		s.r = 0
	}
	if s.w == len(s.buf) {
		if len(s.buf) >= maxMarkup {
			return errMarkupTooLong
		}
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.w])
		s.buf = nb
	}
	for range 100 {
		n, err := s.src.Read(s.buf[s.w:])
		s.w += n
		if err == io.EOF {
			s.eof = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("read call file: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	return fmt.Errorf("read call file: %w", io.ErrNoProgress)
}

// here moves a syntax error to the current position.
func (s *scanner) here(err error) error {
	if se, ok := err.(*syntaxError); ok {
		se.line, se.col = s.line, s.col
	}
	return err
}

// ensure tries to have n bytes buffered; fewer remain only at end of input.
func (s *scanner) ensure(n int) error {
	for s.w-s.r < n && !s.eof {
		if err := s.more(); err != nil {
			return s.tooLong(err)
		}
	}
	return nil
}

func (s *scanner) tooLong(err error) error {
	if err == errMarkupTooLong {
		return s.malformed("balise de plus de %d octets", maxMarkup)
	}
	return err
}

// consume advances past n buffered bytes, keeping line and column.
func (s *scanner) consume(n int) {
	seg := s.buf[s.r : s.r+n]
	if n < 64 {
		for _, c := range seg {
			switch {
			case c == '\n':
				s.line++
				s.col = 1
			case c&0xC0 != 0x80: // not a UTF-8 continuation byte
				s.col++
			}
		}
		s.r += n
		return
	}
	if i := bytes.LastIndexByte(seg, '\n'); i >= 0 {
		s.line += bytes.Count(seg, []byte{'\n'})
		s.col = 1 + utf8.RuneCount(seg[i+1:])
	} else {
		s.col += utf8.RuneCount(seg)
	}
	s.r += n
}

func (s *scanner) depth() int { return len(s.offs) }

func (s *scanner) top() []byte { return s.stack[s.offs[len(s.offs)-1]:] }

// next returns the next token. At the end of a well-formed document it
// returns tokEOF. Document errors are *syntaxError.
func (s *scanner) next() (tokenKind, error) {
	if !s.started {
		s.started = true
		if err := s.prolog(); err != nil {
			return 0, err
		}
	}
	if s.pendingEnd {
		s.pendingEnd = false
		s.name = s.top()
		s.pop()
		return tokEnd, nil
	}
	for {
		if s.r >= s.w {
			if err := s.more(); err != nil {
				return 0, err
			}
			if s.r >= s.w {
				if err := s.atEOF(); err != nil {
					return 0, err
				}
				return tokEOF, nil
			}
		}
		if s.buf[s.r] != '<' {
			if s.depth() == 0 {
				if err := s.skipOutside(); err != nil {
					return 0, err
				}
				continue
			}
			return tokText, s.scanText()
		}
		s.nonSpace = true
		if err := s.ensure(9); err != nil {
			return 0, err
		}
		b := s.buf[s.r:s.w]
		switch {
		case len(b) < 2:
			return 0, s.malformed("fin de fichier inattendue")
		case b[1] == '/':
			return tokEnd, s.scanEndTag()
		case b[1] == '?':
			if err := s.scanPI(); err != nil {
				return 0, err
			}
		case bytes.HasPrefix(b, []byte("<!--")):
			if err := s.scanComment(); err != nil {
				return 0, err
			}
		case bytes.HasPrefix(b, []byte("<![CDATA[")):
			if s.depth() == 0 {
				return 0, s.malformed("section CDATA hors de l'élément racine")
			}
			return tokText, s.scanCDATA()
		case bytes.HasPrefix(b, []byte("<!DOCTYPE")):
			return 0, s.malformed("DTD interdite (déclaration <!DOCTYPE>)")
		case b[1] == '!':
			return 0, s.malformed("déclaration « <! » non reconnue")
		default:
			return tokStart, s.scanStartTag()
		}
	}
}

func (s *scanner) atEOF() error {
	switch {
	case s.depth() > 0:
		return s.malformed("fin de fichier inattendue, l'élément %s n'est pas fermé", safeName(s.top()))
	case s.rootSeen:
		return nil // tokEOF
	case !s.nonSpace:
		return &syntaxError{code: CodeEmpty, msg: "Fichier vide"}
	default:
		return s.malformed("aucun élément racine")
	}
}

// prolog handles the byte order mark and the XML declaration, and switches
// to the declared encoding.
func (s *scanner) prolog() error {
	if err := s.ensure(5); err != nil {
		return err
	}
	b := s.buf[s.r:s.w]
	bom := false
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		s.r += 3
		bom = true
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}), bytes.HasPrefix(b, []byte{0xFF, 0xFE}),
		bytes.HasPrefix(b, []byte{0, 0, 0, '<'}), bytes.HasPrefix(b, []byte{'<', 0, 0, 0}),
		bytes.HasPrefix(b, []byte{0, '<', 0, '?'}), bytes.HasPrefix(b, []byte{'<', 0, '?', 0}):
		return s.errorf(CodeEncoding, "Encodage non pris en charge (UTF-16 ou UTF-32) : utiliser UTF-8, ISO-8859-1 ou ISO-8859-15")
	}
	if err := s.ensure(6); err != nil {
		return err
	}
	b = s.buf[s.r:s.w]
	if len(b) < 6 || !bytes.HasPrefix(b, []byte("<?xml")) || !isSpace(b[5]) {
		s.encoding = "UTF-8"
		return nil
	}
	s.nonSpace = true
	end := -1
	for {
		if i := bytes.Index(s.buf[s.r:s.w], []byte("?>")); i >= 0 {
			end = i
			break
		}
		if s.eof || s.w-s.r > 1024 {
			return s.malformed("déclaration XML non terminée")
		}
		if err := s.more(); err != nil {
			return s.tooLong(err)
		}
	}
	version, enc, err := parseDecl(s.buf[s.r+5 : s.r+end])
	if err != "" {
		return s.malformed("déclaration XML invalide (%s)", err)
	}
	if !strings.HasPrefix(version, "1.") || len(version) < 3 || !allDigits(version[2:]) {
		return s.malformed("version XML non prise en charge")
	}
	s.consume(end + 2)
	switch strings.ToUpper(enc) {
	case "", "UTF-8":
		s.encoding = "UTF-8"
		return nil
	case "ISO-8859-1":
		s.encoding = "ISO-8859-1"
		if !bom {
			s.transcode(charmap.ISO8859_1.NewDecoder())
			return nil
		}
	case "ISO-8859-15":
		s.encoding = "ISO-8859-15"
		if !bom {
			s.transcode(charmap.ISO8859_15.NewDecoder())
			return nil
		}
	}
	if bom {
		return s.errorf(CodeEncoding, "Encodage déclaré incompatible avec la marque d'ordre des octets UTF-8")
	}
	return s.errorf(CodeEncoding, "Encodage « %s » non pris en charge : utiliser UTF-8, ISO-8859-1 ou ISO-8859-15", safeName([]byte(enc)))
}

// transcode decodes the rest of the input with t.
func (s *scanner) transcode(t transform.Transformer) {
	rest := bytes.Clone(s.buf[s.r:s.w])
	var src io.Reader = bytes.NewReader(rest)
	if !s.eof {
		src = io.MultiReader(src, s.src)
	}
	s.src = transform.NewReader(src, t)
	s.r, s.w, s.eof = 0, 0, false
}

// parseDecl parses the pseudo-attributes of an XML declaration; it returns a
// French reason on error.
func parseDecl(b []byte) (version, encoding, reason string) {
	seen := 0
	for {
		i := 0
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			break
		}
		if i == 0 && seen > 0 {
			return "", "", "espace manquant"
		}
		b = b[i:]
		eq := bytes.IndexByte(b, '=')
		if eq < 0 {
			return "", "", "pseudo-attribut mal formé"
		}
		name := string(bytes.TrimRight(b[:eq], " \t\r\n"))
		b = bytes.TrimLeft(b[eq+1:], " \t\r\n")
		if len(b) == 0 || b[0] != '"' && b[0] != '\'' {
			return "", "", "guillemet attendu"
		}
		q := bytes.IndexByte(b[1:], b[0])
		if q < 0 {
			return "", "", "guillemet non fermé"
		}
		val := string(b[1 : 1+q])
		b = b[q+2:]
		switch {
		case name == "version" && seen == 0:
			version = val
			seen = 1
		case name == "encoding" && seen == 1:
			if !isEncName(val) {
				return "", "", "nom d'encodage invalide"
			}
			encoding = val
			seen = 2
		case name == "standalone" && seen >= 1 && seen <= 2:
			if val != "yes" && val != "no" {
				return "", "", "standalone doit valoir yes ou no"
			}
			seen = 3
		default:
			return "", "", "pseudo-attribut inattendu"
		}
	}
	if seen == 0 {
		return "", "", "version absente"
	}
	return version, encoding, ""
}

func isEncName(s string) bool {
	if s == "" || !isASCIILetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isASCIILetter(c) && !isDigit(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// skipOutside skips white space outside the root element.
func (s *scanner) skipOutside() error {
	b := s.buf[s.r:s.w]
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	s.consume(i)
	if i < len(b) && b[i] != '<' {
		s.nonSpace = true
		if s.rootSeen {
			return s.malformed("texte après l'élément racine")
		}
		return s.malformed("texte avant l'élément racine")
	}
	return nil
}

func (s *scanner) push(name []byte) {
	s.offs = append(s.offs, len(s.stack))
	s.stack = append(s.stack, name...)
}

func (s *scanner) pop() {
	n := len(s.offs) - 1
	s.stack = s.stack[:s.offs[n]]
	s.offs = s.offs[:n]
}

// findTagEnd returns the offset from s.r of the '>' closing the markup that
// starts at s.r, skipping quoted attribute values.
func (s *scanner) findTagEnd() (int, error) {
	i, quote := 1, byte(0)
	for {
		b := s.buf[s.r:s.w]
		for ; i < len(b); i++ {
			c := b[i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '>':
				return i, nil
			}
		}
		if s.eof {
			return 0, s.malformed("fin de fichier inattendue dans une balise")
		}
		if err := s.more(); err != nil {
			return 0, s.tooLong(err)
		}
	}
}

func (s *scanner) scanStartTag() error {
	s.tokLine, s.tokCol = s.line, s.col
	if s.depth() == 0 && s.rootSeen {
		return s.malformed("contenu après la fin de l'élément racine")
	}
	if s.depth() >= maxDepth {
		return s.malformed("plus de %d niveaux d'imbrication", maxDepth)
	}
	end, err := s.findTagEnd()
	if err != nil {
		return err
	}
	b := s.buf[s.r : s.r+end]
	p, ok := nameEnd(b, 1)
	if !ok {
		return s.malformed("nom d'élément invalide")
	}
	if p-1 > maxName {
		return s.malformed("nom d'élément de plus de %d octets", maxName)
	}
	s.name = b[1:p]
	s.attrs = s.attrs[:0]
	s.attrBuf = s.attrBuf[:0]
	s.selfClose = false
	type span struct{ n0, n1, v0, v1 int }
	var spans [8]span
	list := spans[:0]
	for {
		q := p
		for p < len(b) && isSpace(b[p]) {
			p++
		}
		if p == len(b) {
			break
		}
		if b[p] == '/' && p == len(b)-1 {
			s.selfClose = true
			break
		}
		if q == p {
			return s.malformed("espace manquant avant un attribut de l'élément %s", safeName(s.name))
		}
		if len(list) == maxAttrs {
			return s.malformed("plus de %d attributs sur l'élément %s", maxAttrs, safeName(s.name))
		}
		n0 := p
		if p, ok = nameEnd(b, p); !ok {
			return s.malformed("nom d'attribut invalide dans l'élément %s", safeName(s.name))
		}
		n1 := p
		for p < len(b) && isSpace(b[p]) {
			p++
		}
		if p == len(b) || b[p] != '=' {
			return s.malformed("« = » attendu après un attribut de l'élément %s", safeName(s.name))
		}
		p++
		for p < len(b) && isSpace(b[p]) {
			p++
		}
		if p == len(b) || b[p] != '"' && b[p] != '\'' {
			return s.malformed("valeur d'attribut sans guillemets dans l'élément %s", safeName(s.name))
		}
		qc := b[p]
		v := bytes.IndexByte(b[p+1:], qc)
		if v < 0 {
			return s.malformed("valeur d'attribut non fermée dans l'élément %s", safeName(s.name))
		}
		v0 := len(s.attrBuf)
		if err := s.decodeAttr(b[p+1 : p+1+v]); err != nil {
			return err
		}
		for _, o := range list {
			if bytes.Equal(b[o.n0:o.n1], b[n0:n1]) {
				return s.malformed("attribut en double dans l'élément %s", safeName(s.name))
			}
		}
		list = append(list, span{n0, n1, v0, len(s.attrBuf)})
		p += v + 2
	}
	for _, o := range list {
		s.attrs = append(s.attrs, attr{name: b[o.n0:o.n1], value: s.attrBuf[o.v0:o.v1]})
	}
	s.push(s.name)
	s.name = s.top() // stable copy: the buffer may move before the end token
	s.rootSeen = true
	s.consume(end + 1)
	s.pendingEnd = s.selfClose
	return nil
}

// decodeAttr appends the normalized value of an attribute to s.attrBuf.
func (s *scanner) decodeAttr(v []byte) error {
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '<':
			return s.malformed("caractère « < » dans une valeur d'attribut")
		case c == '&':
			j := bytes.IndexByte(v[i:], ';')
			if j < 0 {
				return s.malformed("référence d'entité non terminée")
			}
			out, err := s.decodeRef(v[i+1:i+j], s.attrBuf)
			if err != nil {
				return err
			}
			s.attrBuf = out
			i += j + 1
		case c == '\r':
			s.attrBuf = append(s.attrBuf, ' ')
			i++
			if i < len(v) && v[i] == '\n' {
				i++
			}
		case c == '\t' || c == '\n':
			s.attrBuf = append(s.attrBuf, ' ')
			i++
		case c < 0x20:
			return s.malformed("caractère de contrôle interdit")
		case c < 0x80:
			s.attrBuf = append(s.attrBuf, c)
			i++
		default:
			r, size := utf8.DecodeRune(v[i:])
			if err := s.checkRune(r, size); err != nil {
				return err
			}
			s.attrBuf = append(s.attrBuf, v[i:i+size]...)
			i += size
		}
	}
	return nil
}

func (s *scanner) checkRune(r rune, size int) error {
	if r == utf8.RuneError && size <= 1 {
		return s.errorf(CodeEncoding, "Séquence d'octets invalide pour l'encodage %s", s.encoding)
	}
	if !isXMLChar(r) {
		return s.malformed("caractère interdit en XML")
	}
	return nil
}

// decodeRef appends the character of the reference &ref; to out.
func (s *scanner) decodeRef(ref []byte, out []byte) ([]byte, error) {
	switch string(ref) {
	case "lt":
		return append(out, '<'), nil
	case "gt":
		return append(out, '>'), nil
	case "amp":
		return append(out, '&'), nil
	case "apos":
		return append(out, '\''), nil
	case "quot":
		return append(out, '"'), nil
	}
	if len(ref) < 2 || ref[0] != '#' {
		return nil, s.malformed("entité non définie (les DTD sont interdites)")
	}
	base, digits := 10, ref[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if len(digits) == 0 {
		return nil, s.malformed("référence de caractère invalide")
	}
	r := 0
	for _, c := range digits {
		var d int
		switch {
		case isDigit(c):
			d = int(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			return nil, s.malformed("référence de caractère invalide")
		}
		r = r*base + d
		if r > utf8.MaxRune {
			return nil, s.malformed("référence de caractère invalide")
		}
	}
	if !isXMLChar(rune(r)) {
		return nil, s.malformed("référence à un caractère interdit en XML")
	}
	return utf8.AppendRune(out, rune(r)), nil
}

func (s *scanner) scanEndTag() error {
	s.tokLine, s.tokCol = s.line, s.col
	end, err := s.findTagEnd()
	if err != nil {
		return err
	}
	b := s.buf[s.r : s.r+end]
	p, ok := nameEnd(b, 2)
	if !ok {
		return s.malformed("nom d'élément invalide dans une balise fermante")
	}
	for q := p; q < len(b); q++ {
		if !isSpace(b[q]) {
			return s.malformed("balise fermante mal formée")
		}
	}
	if s.depth() == 0 {
		return s.malformed("balise fermante %s sans balise ouvrante", safeName(b[2:p]))
	}
	if !bytes.Equal(b[2:p], s.top()) {
		return s.malformed("balise fermante %s alors que l'élément %s est ouvert", safeName(b[2:p]), safeName(s.top()))
	}
	s.name = s.top() // valid until the next token: pop only truncates
	s.pop()
	s.consume(end + 1)
	return nil
}

// scanUntil consumes a construct that ends with term (a comment, a
// processing instruction or a CDATA section) without holding it in memory.
// body is called on successive parts of its content; it returns how many
// bytes it accepted, leaving a partial character or reference for later.
func (s *scanner) scanUntil(skip int, term string, body func(seg []byte, final bool) (int, error)) error {
	if err := s.ensure(skip); err != nil {
		return err
	}
	s.consume(skip)
	for {
		b := s.buf[s.r:s.w]
		i := bytes.Index(b, []byte(term))
		if i >= 0 {
			n, err := body(b[:i], true)
			s.consume(n)
			if err != nil {
				return s.here(err)
			}
			s.consume(len(term))
			return nil
		}
		// Keep enough bytes to recognise term across the buffer boundary.
		keep := min(len(term)-1, len(b))
		n, err := body(b[:len(b)-keep], s.eof)
		s.consume(n)
		if err != nil {
			return s.here(err)
		}
		if s.eof {
			return s.malformed("fin de fichier inattendue dans un commentaire, une section CDATA ou une instruction de traitement")
		}
		if err := s.more(); err != nil {
			return s.tooLong(err)
		}
	}
}

// checkChars accepts the characters of seg that form complete, allowed
// characters.
func (s *scanner) checkChars(seg []byte, final bool) (int, error) {
	for i := 0; i < len(seg); {
		c := seg[i]
		switch {
		case c >= 0x20 && c < 0x80, c == '\t', c == '\n', c == '\r':
			i++
		case c < 0x20:
			return i, s.malformed("caractère de contrôle interdit")
		default:
			if !final && !utf8.FullRune(seg[i:]) {
				return i, nil
			}
			r, size := utf8.DecodeRune(seg[i:])
			if err := s.checkRune(r, size); err != nil {
				return i, err
			}
			i += size
		}
	}
	return len(seg), nil
}

func (s *scanner) scanComment() error {
	s.consume(4) // "<!--", buffered by next
	for {
		b := s.buf[s.r:s.w]
		i := bytes.Index(b, []byte("--"))
		if i >= 0 && i+2 < len(b) {
			n, err := s.checkChars(b[:i], true)
			s.consume(n)
			if err != nil {
				return s.here(err)
			}
			if b[i+2] != '>' {
				return s.malformed("« -- » interdit dans un commentaire")
			}
			s.consume(3)
			return nil
		}
		limit := max(len(b)-2, 0)
		if i >= 0 {
			limit = i
		}
		n, err := s.checkChars(b[:limit], false)
		s.consume(n)
		if err != nil {
			return s.here(err)
		}
		if s.eof {
			return s.malformed("fin de fichier inattendue dans un commentaire")
		}
		if err := s.more(); err != nil {
			return s.tooLong(err)
		}
	}
}

func (s *scanner) scanPI() error {
	if err := s.ensure(maxRef); err != nil {
		return err
	}
	b := s.buf[s.r:s.w]
	p, ok := nameEnd(b, 2)
	if !ok {
		return s.malformed("instruction de traitement sans nom")
	}
	if bytes.EqualFold(b[2:p], []byte("xml")) {
		return s.malformed("déclaration XML ailleurs qu'au début du fichier")
	}
	if p < len(b) && !isSpace(b[p]) && !bytes.HasPrefix(b[p:], []byte("?>")) {
		return s.malformed("instruction de traitement mal formée")
	}
	return s.scanUntil(p, "?>", s.checkChars)
}

func (s *scanner) beginText() {
	s.tokLine, s.tokCol = s.line, s.col
	s.text = s.text[:0]
	s.textLong = false
	s.textSpace = true
}

func (s *scanner) appendText(b []byte) {
	if room := maxText - len(s.text); len(b) > room {
		b = b[:room]
		s.textLong = true
	}
	s.text = append(s.text, b...)
}

func (s *scanner) scanCDATA() error {
	s.beginText()
	s.textSpace = false
	return s.scanUntil(9, "]]>", func(seg []byte, final bool) (int, error) {
		n, err := s.checkChars(seg, final)
		if err != nil {
			return n, err
		}
		if n > 0 && seg[n-1] == '\r' && !final {
			n--
		}
		s.appendNormalized(seg[:n])
		return n, nil
	})
}

// appendNormalized appends seg with line ends normalized to "\n".
func (s *scanner) appendNormalized(seg []byte) {
	for len(seg) > 0 {
		i := bytes.IndexByte(seg, '\r')
		if i < 0 {
			s.appendText(seg)
			return
		}
		s.appendText(seg[:i])
		s.appendText([]byte{'\n'})
		seg = seg[i+1:]
		if len(seg) > 0 && seg[0] == '\n' {
			seg = seg[1:]
		}
	}
}

// scanText reads character data up to the next '<'.
func (s *scanner) scanText() error {
	s.beginText()
	for {
		b := s.buf[s.r:s.w]
		i := bytes.IndexByte(b, '<')
		final := i >= 0 || s.eof
		if i >= 0 {
			b = b[:i]
		}
		n, err := s.decodeText(b, final)
		s.consume(n)
		if err != nil {
			return s.here(err)
		}
		if final && n == len(b) {
			return nil
		}
		if err := s.more(); err != nil {
			return err
		}
	}
}

// decodeText decodes character data; when final is false it stops before a
// reference, character or line end that may continue in the next read.
func (s *scanner) decodeText(b []byte, final bool) (int, error) {
	i := 0
	for i < len(b) {
		// Fast path: a run of plain ASCII.
		j := i
		space := s.textSpace
		for j < len(b) {
			c := b[j]
			if c < 0x20 || c >= 0x80 || c == '&' || c == ']' {
				if c == '\n' || c == '\t' {
					j++
					continue
				}
				break
			}
			if c != ' ' {
				space = false
			}
			j++
		}
		if j > i {
			s.appendText(b[i:j])
			s.textSpace = space
			i = j
			if i == len(b) {
				break
			}
		}
		c := b[i]
		switch {
		case c == '&':
			k := bytes.IndexByte(b[i:], ';')
			if k < 0 {
				if !final && len(b)-i < maxRef {
					return i, nil
				}
				return i, s.malformed("référence d'entité non terminée")
			}
			var tmp [8]byte
			out, err := s.decodeRef(b[i+1:i+k], tmp[:0])
			if err != nil {
				return i, err
			}
			s.appendText(out)
			s.textSpace = false
			i += k + 1
		case c == ']':
			if len(b)-i < 3 && !final {
				return i, nil
			}
			if bytes.HasPrefix(b[i:], []byte("]]>")) {
				return i, s.malformed("« ]]> » interdit dans le texte")
			}
			s.appendText(b[i : i+1])
			s.textSpace = false
			i++
		case c == '\r':
			if i+1 == len(b) && !final {
				return i, nil
			}
			s.appendText([]byte{'\n'})
			i++
			if i < len(b) && b[i] == '\n' {
				i++
			}
		case c < 0x20:
			return i, s.malformed("caractère de contrôle interdit")
		default:
			if !final && !utf8.FullRune(b[i:]) {
				return i, nil
			}
			r, size := utf8.DecodeRune(b[i:])
			if err := s.checkRune(r, size); err != nil {
				return i, err
			}
			s.appendText(b[i : i+size])
			s.textSpace = false
			i += size
		}
	}
	return i, nil
}

// nameEnd returns the end of the XML name starting at b[p].
func nameEnd(b []byte, p int) (int, bool) {
	start := p
	for p < len(b) {
		c := b[p]
		if c < 0x80 {
			if isASCIILetter(c) || c == '_' || c == ':' || p > start && (isDigit(c) || c == '-' || c == '.') {
				p++
				continue
			}
			break
		}
		r, size := utf8.DecodeRune(b[p:])
		if !isNameRune(r, p == start) {
			break
		}
		p += size
	}
	return p, p > start
}

func isNameRune(r rune, first bool) bool {
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	case first:
		return false
	}
	return r == 0xB7 || r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040
}

func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// safeName returns an element or encoding name fit for a message: printable
// ASCII, at most 40 characters.
func safeName(b []byte) string {
	var sb strings.Builder
	for _, r := range string(b) {
		if sb.Len() >= 40 {
			sb.WriteString("…")
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
