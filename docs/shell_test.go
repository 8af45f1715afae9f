package docs

import (
	"fmt"
	"regexp"
	"strings"
)

// A small parser for the shell the docs use: enough of POSIX sh to split
// commands into words exactly as sh would (quote removal, backslashes,
// line continuations, comments), to see parameter expansions and command
// substitutions inside words, and to skip what is not a word (operators,
// redirections and their targets, here-document bodies). It does not
// expand anything; a word keeps its parts so a check can tell "$POD" from
// "pod/$POD" from "$(kubectl …)".
//
// Bash's process substitution <(…) is understood too. One addition to
// sh: <name> (a letter, then letters, digits, _ . -,
// then >) is a placeholder the reader replaces, as in `--node <node>`,
// not a redirection.

type partKind int

const (
	partLit         partKind = iota // literal text, quotes removed
	partVar                         // $NAME or ${NAME…}
	partSub                         // $(…) or `…`
	partPlaceholder                 // <name>
)

type part struct {
	kind partKind
	text string     // the literal, the variable's name, the placeholder's name
	sub  []*command // the commands of a substitution
}

type word struct {
	parts []part
}

// command is one simple command: its words, assignments first.
type command struct {
	line  int // 1-based, relative to the parsed text
	words []word
}

// lit reports the word's value when it is made of literal text only.
func (w word) lit() (string, bool) {
	var b strings.Builder
	for _, p := range w.parts {
		if p.kind != partLit {
			return "", false
		}
		b.WriteString(p.text)
	}
	return b.String(), true
}

// onlyVar is the name of the variable when the word is exactly one
// parameter expansion ($V, ${V}, "$V").
func (w word) onlyVar() string {
	if len(w.parts) == 1 && w.parts[0].kind == partVar {
		return w.parts[0].text
	}
	return ""
}

// vars lists the variables the word expands, substitutions included.
func (w word) vars() []string {
	var out []string
	for _, p := range w.parts {
		switch p.kind {
		case partVar:
			out = append(out, p.text)
		case partSub:
			for _, c := range p.sub {
				for _, sw := range c.words {
					out = append(out, sw.vars()...)
				}
			}
		}
	}
	return out
}

// String renders the word back in a readable (not re-quoted) form.
func (w word) String() string {
	var b strings.Builder
	for _, p := range w.parts {
		switch p.kind {
		case partLit:
			b.WriteString(p.text)
		case partVar:
			b.WriteString("$" + p.text)
		case partSub:
			b.WriteString("$(…)")
		case partPlaceholder:
			b.WriteString("<" + p.text + ">")
		}
	}
	return b.String()
}

// assignment splits NAME=value words.
func (w word) assignment() (string, word, bool) {
	if len(w.parts) == 0 || w.parts[0].kind != partLit {
		return "", word{}, false
	}
	m := assignRE.FindStringSubmatch(w.parts[0].text)
	if m == nil {
		return "", word{}, false
	}
	rest := word{}
	if v := w.parts[0].text[len(m[0]):]; v != "" {
		rest.parts = append(rest.parts, part{kind: partLit, text: v})
	}
	rest.parts = append(rest.parts, w.parts[1:]...)
	return m[1], rest, true
}

var (
	assignRE      = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=`)
	placeholderRE = regexp.MustCompile(`^<([A-Za-z][A-Za-z0-9_.-]*)>`)
	varRE         = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])`)
	braceVarRE    = regexp.MustCompile(`^(#?)([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])`)
)

type parser struct {
	src      string
	i        int
	heredocs []heredoc // announced on the current line, read after its newline
}

type heredoc struct {
	delim     string
	stripTabs bool
}

// parseShell parses a script into its simple commands, in order; those of
// command substitutions are inside the words.
func parseShell(src string) ([]*command, error) {
	p := &parser{src: src}
	cmds, err := p.list(false)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.src) {
		return nil, p.errorf("unexpected %q", p.src[p.i])
	}
	return cmds, nil
}

func (p *parser) line() int { return strings.Count(p.src[:p.i], "\n") + 1 }

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.line(), fmt.Sprintf(format, args...))
}

func (p *parser) peek(s string) bool { return strings.HasPrefix(p.src[p.i:], s) }

// list reads commands until the end, or until the ")" that closes a
// command substitution when inSub.
func (p *parser) list(inSub bool) ([]*command, error) {
	var cmds []*command
	cur := &command{}
	end := func() {
		if len(cur.words) > 0 {
			cmds = append(cmds, cur)
		}
		cur = &command{}
	}
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			p.i++
		case p.peek("\\\n"):
			p.i += 2
		case c == '\n':
			p.i++
			end()
			if err := p.readHeredocs(); err != nil {
				return nil, err
			}
		case c == '#':
			for p.i < len(p.src) && p.src[p.i] != '\n' {
				p.i++
			}
		case p.peek("&>"): // &> file, &>> file
			p.i += 2
			if p.peek(">") {
				p.i++
			}
			if err := p.redirectTarget(); err != nil {
				return nil, err
			}
		case c == ';' || c == '&' || c == '|':
			p.i++
			if p.i < len(p.src) && (p.src[p.i] == c || (c == '|' && p.src[p.i] == '&')) {
				p.i++ // ;; && || |&
			}
			end()
		case c == '(':
			// A subshell: its commands are commands like any other.
			p.i++
			end()
			sub, err := p.list(true)
			if err != nil {
				return nil, err
			}
			cmds = append(cmds, sub...)
		case c == ')':
			if !inSub {
				return nil, p.errorf("unexpected )")
			}
			p.i++
			end()
			return cmds, nil
		case (c == '<' || c == '>') && placeholderRE.FindString(p.src[p.i:]) == "" && !p.peek(string(c)+"("):
			if err := p.redirect(); err != nil {
				return nil, err
			}
		default:
			if cur.line == 0 {
				cur.line = p.line()
			}
			w, redir, err := p.word()
			if err != nil {
				return nil, err
			}
			if redir { // the word was a file descriptor number: 2>&1
				if err := p.redirect(); err != nil {
					return nil, err
				}
				continue
			}
			cur.words = append(cur.words, w)
		}
	}
	if inSub {
		return nil, p.errorf("unterminated $(")
	}
	end()
	return cmds, nil
}

// redirect consumes a redirection operator and its target.
func (p *parser) redirect() error {
	switch {
	case p.peek("<<<"):
		p.i += 3
		return p.redirectTarget()
	case p.peek("<<"):
		p.i += 2
		strip := false
		if p.peek("-") {
			p.i++
			strip = true
		}
		p.skipBlanks()
		w, _, err := p.word()
		if err != nil {
			return err
		}
		var d strings.Builder
		for _, pt := range w.parts {
			if pt.kind != partLit {
				return p.errorf("here-document delimiter with an expansion")
			}
			d.WriteString(pt.text)
		}
		if d.Len() == 0 {
			return p.errorf("here-document without a delimiter")
		}
		p.heredocs = append(p.heredocs, heredoc{delim: d.String(), stripTabs: strip})
		return nil
	}
	p.i++ // < or >
	for p.i < len(p.src) && strings.IndexByte(">&|", p.src[p.i]) >= 0 {
		p.i++
	}
	return p.redirectTarget()
}

func (p *parser) redirectTarget() error {
	p.skipBlanks()
	if p.i >= len(p.src) || strings.IndexByte("\n;&|()<>", p.src[p.i]) >= 0 {
		return p.errorf("redirection without a target")
	}
	_, _, err := p.word()
	return err
}

func (p *parser) skipBlanks() {
	for p.i < len(p.src) && (p.src[p.i] == ' ' || p.src[p.i] == '\t') {
		p.i++
	}
}

// readHeredocs skips the bodies of the here-documents announced on the
// line just ended.
func (p *parser) readHeredocs() error {
	for _, h := range p.heredocs {
		for {
			if p.i >= len(p.src) {
				return p.errorf("here-document not terminated by %q", h.delim)
			}
			nl := strings.IndexByte(p.src[p.i:], '\n')
			var ln string
			if nl < 0 {
				ln, p.i = p.src[p.i:], len(p.src)
			} else {
				ln, p.i = p.src[p.i:p.i+nl], p.i+nl+1
			}
			if h.stripTabs {
				ln = strings.TrimLeft(ln, "\t")
			}
			if ln == h.delim {
				break
			}
		}
	}
	p.heredocs = nil
	return nil
}

// word reads one word. redir is true when the word is a file descriptor
// number directly followed by < or > (the 2 of 2>&1).
func (p *parser) word() (w word, redir bool, err error) {
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			w.parts = append(w.parts, part{kind: partLit, text: lit.String()})
			lit.Reset()
		}
	}
	add := func(pt part) {
		flush()
		w.parts = append(w.parts, pt)
	}
	digitsOnly := true
	for p.i < len(p.src) {
		c := p.src[p.i]
		if c == '<' || c == '>' {
			if p.peek(string(c) + "(") { // process substitution <(…), >(…)
				p.i += 2
				cmds, err := p.list(true)
				if err != nil {
					return word{}, false, err
				}
				add(part{kind: partSub, sub: cmds})
				digitsOnly = false
				continue
			}
			if m := placeholderRE.FindStringSubmatch(p.src[p.i:]); m != nil {
				add(part{kind: partPlaceholder, text: m[1]})
				p.i += len(m[0])
				digitsOnly = false
				continue
			}
			if digitsOnly && len(w.parts) == 0 && lit.Len() > 0 {
				return word{}, true, nil
			}
			break
		}
		if strings.IndexByte(" \t\r\n;&|()", c) >= 0 {
			break
		}
		if c < '0' || c > '9' {
			digitsOnly = false
		}
		switch c {
		case '\\':
			if p.i+1 >= len(p.src) {
				return word{}, false, p.errorf("backslash at the end")
			}
			if p.src[p.i+1] != '\n' { // \<newline> is a continuation: nothing
				lit.WriteByte(p.src[p.i+1])
			}
			p.i += 2
		case '\'':
			end := strings.IndexByte(p.src[p.i+1:], '\'')
			if end < 0 {
				return word{}, false, p.errorf("unterminated single quote")
			}
			lit.WriteString(p.src[p.i+1 : p.i+1+end])
			p.i += end + 2
		case '"':
			p.i++
			if err := p.doubleQuoted(&lit, flush, add); err != nil {
				return word{}, false, err
			}
		case '$':
			pt, ok, err := p.dollar()
			if err != nil {
				return word{}, false, err
			}
			if ok {
				add(pt)
			} else {
				lit.WriteByte('$')
				p.i++
			}
		case '`':
			pt, err := p.backquote()
			if err != nil {
				return word{}, false, err
			}
			add(pt)
		default:
			lit.WriteByte(c)
			p.i++
		}
	}
	flush()
	if len(w.parts) == 0 {
		// "" and '' are words too: an empty literal.
		w.parts = []part{{kind: partLit}}
	}
	return w, false, nil
}

// doubleQuoted reads up to the closing ".
func (p *parser) doubleQuoted(lit *strings.Builder, flush func(), add func(part)) error {
	start := p.line()
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch c {
		case '"':
			p.i++
			return nil
		case '\\':
			if p.i+1 < len(p.src) && strings.IndexByte("$`\"\\\n", p.src[p.i+1]) >= 0 {
				if p.src[p.i+1] != '\n' {
					lit.WriteByte(p.src[p.i+1])
				}
				p.i += 2
				continue
			}
			lit.WriteByte(c)
			p.i++
		case '$':
			pt, ok, err := p.dollar()
			if err != nil {
				return err
			}
			if ok {
				add(pt)
			} else {
				lit.WriteByte('$')
				p.i++
			}
		case '`':
			pt, err := p.backquote()
			if err != nil {
				return err
			}
			add(pt)
		default:
			lit.WriteByte(c)
			p.i++
		}
	}
	return fmt.Errorf("line %d: unterminated double quote", start)
}

// dollar reads an expansion at a $; ok is false for a literal $.
func (p *parser) dollar() (part, bool, error) {
	rest := p.src[p.i+1:]
	switch {
	case strings.HasPrefix(rest, "(("):
		// Arithmetic: no commands inside; find the matching )).
		depth, j := 0, p.i+1
		for ; j < len(p.src); j++ {
			switch p.src[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if j >= len(p.src) {
			return part{}, false, p.errorf("unterminated $((")
		}
		text := p.src[p.i : j+1]
		p.i = j + 1
		return part{kind: partLit, text: text}, true, nil
	case strings.HasPrefix(rest, "("):
		p.i += 2
		saved := p.heredocs
		p.heredocs = nil
		cmds, err := p.list(true)
		if err != nil {
			return part{}, false, err
		}
		p.heredocs = append(saved, p.heredocs...)
		return part{kind: partSub, sub: cmds}, true, nil
	case strings.HasPrefix(rest, "{"):
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return part{}, false, p.errorf("unterminated ${")
		}
		inner := rest[1:end]
		name := braceVarRE.FindStringSubmatch(inner)
		if name == nil {
			return part{}, false, p.errorf("bad substitution ${%s}", inner)
		}
		p.i += 1 + end + 1
		return part{kind: partVar, text: name[2]}, true, nil
	}
	if m := varRE.FindString(rest); m != "" {
		p.i += 1 + len(m)
		return part{kind: partVar, text: m}, true, nil
	}
	return part{}, false, nil
}

// backquote reads `…` (no nesting: the docs do not nest them).
func (p *parser) backquote() (part, error) {
	end := strings.IndexByte(p.src[p.i+1:], '`')
	if end < 0 {
		return part{}, p.errorf("unterminated `")
	}
	inner := p.src[p.i+1 : p.i+1+end]
	cmds, err := parseShell(inner)
	if err != nil {
		return part{}, p.errorf("in `%s`: %v", inner, err)
	}
	p.i += end + 2
	return part{kind: partSub, sub: cmds}, nil
}
