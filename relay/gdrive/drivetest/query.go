package drivetest

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// The files.list q parameter: a small parser for the subset of Drive's search
// syntax that clients realistically send. Anything outside it is a 400, as
// Drive answers "Invalid Value", so a client cannot silently depend on a
// query the fake does not understand.
//
//	expr   := and { "or" and }
//	and    := unary { "and" unary }
//	unary  := "not" unary | "(" expr ")" | cond
//	cond   := string "in" ("parents" | "owners" | "writers" | "readers")
//	        | field op value
//	field  := name | mimeType | trashed | starred | modifiedTime | createdTime
//	op     := "=" | "!=" | "<" | "<=" | ">" | ">=" | "contains"
//	value  := 'string with \' and \\ escapes' | true | false

// predicate reports whether a file matches a query.
type predicate func(f *file) bool

type token struct {
	kind string // "str", "word", "op", "(", ")"
	text string
}

func tokenize(q string) ([]token, error) {
	var out []token
	r := []rune(q)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')':
			out = append(out, token{kind: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			closed := false
			for i < len(r) {
				if r[i] == '\\' && i+1 < len(r) {
					b.WriteRune(r[i+1])
					i += 2
					continue
				}
				if r[i] == '\'' {
					closed = true
					i++
					break
				}
				b.WriteRune(r[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated string")
			}
			out = append(out, token{kind: "str", text: b.String()})
		case c == '=' || c == '!' || c == '<' || c == '>':
			j := i + 1
			if j < len(r) && r[j] == '=' {
				j++
			}
			op := string(r[i:j])
			if op == "!" {
				return nil, fmt.Errorf("unknown operator %q", "!")
			}
			out = append(out, token{kind: "op", text: op})
			i = j
		case unicode.IsLetter(c):
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_') {
				j++
			}
			out = append(out, token{kind: "word", text: string(r[i:j])})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return out, nil
}

type parser struct {
	toks []token
	pos  int
	s    *Server // resolves the "root" alias
}

func (p *parser) peek() token {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return token{kind: "eof"}
}

func (p *parser) next() token {
	t := p.peek()
	p.pos++
	return t
}

func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.kind == "word" && strings.EqualFold(t.text, w)
}

// parseQuery compiles q; an empty q matches everything.
func parseQuery(q string, s *Server) (predicate, error) {
	if strings.TrimSpace(q) == "" {
		return func(*file) bool { return true }, nil
	}
	toks, err := tokenize(q)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, s: s}
	pred, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != "eof" {
		return nil, fmt.Errorf("unexpected %q after the end of the query", t.text+t.kind)
	}
	return pred, nil
}

func (p *parser) expr() (predicate, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.next()
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(f *file) bool { return l(f) || right(f) }
	}
	return left, nil
}

func (p *parser) and() (predicate, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(f *file) bool { return l(f) && right(f) }
	}
	return left, nil
}

func (p *parser) unary() (predicate, error) {
	switch {
	case p.isWord("not"):
		p.next()
		inner, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(f *file) bool { return !inner(f) }, nil
	case p.peek().kind == "(":
		p.next()
		inner, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next().kind != ")" {
			return nil, fmt.Errorf("missing )")
		}
		return inner, nil
	}
	return p.cond()
}

func (p *parser) cond() (predicate, error) {
	t := p.next()
	if t.kind == "str" {
		return p.membership(t.text)
	}
	if t.kind != "word" {
		return nil, fmt.Errorf("expected a field name, got %q", t.text+t.kind)
	}
	field := t.text
	opTok := p.next()
	op := opTok.text
	switch {
	case opTok.kind == "op":
	case opTok.kind == "word" && opTok.text == "contains":
	default:
		return nil, fmt.Errorf("expected an operator after %s", field)
	}
	val := p.next()
	switch field {
	case "trashed", "starred":
		return boolCond(field, op, val)
	case "name", "mimeType", "modifiedTime", "createdTime":
		return stringCond(field, op, val)
	}
	return nil, fmt.Errorf("unknown field %q", field)
}

// membership parses "'value' in collection", after the value.
func (p *parser) membership(value string) (predicate, error) {
	if !p.isWord("in") {
		return nil, fmt.Errorf("expected 'in' after the string %q", value)
	}
	p.next()
	coll := p.next()
	if coll.kind != "word" {
		return nil, fmt.Errorf("expected a collection after 'in'")
	}
	switch coll.text {
	case "parents":
		id := p.s.resolveAliasLocked(value)
		return func(f *file) bool { return slices.Contains(f.parents, id) }, nil
	case "owners", "writers", "readers":
		return func(*file) bool { return true }, nil // a single account owns and may do everything
	}
	return nil, fmt.Errorf("unknown collection %q", coll.text)
}

// boolCond is the condition field op val on a boolean field.
func boolCond(field, op string, val token) (predicate, error) {
	if val.kind != "word" || (val.text != "true" && val.text != "false") {
		return nil, fmt.Errorf("%s takes true or false", field)
	}
	want := val.text == "true"
	get := func(f *file) bool { return f.trashed }
	if field == "starred" {
		get = func(*file) bool { return false }
	}
	switch op {
	case "=":
		return func(f *file) bool { return get(f) == want }, nil
	case "!=":
		return func(f *file) bool { return get(f) != want }, nil
	}
	return nil, fmt.Errorf("operator %s not supported for %s", op, field)
}

// stringCond is the condition field op val on a string (or time) field.
func stringCond(field, op string, val token) (predicate, error) {
	if val.kind != "str" {
		return nil, fmt.Errorf("%s takes a quoted string", field)
	}
	get := map[string]func(f *file) string{
		"name":         func(f *file) string { return f.name },
		"mimeType":     func(f *file) string { return f.mimeType },
		"modifiedTime": func(f *file) string { return formatTime(f.modified) },
		"createdTime":  func(f *file) string { return formatTime(f.created) },
	}[field]
	v := val.text
	switch op {
	case "=":
		return func(f *file) bool { return get(f) == v }, nil
	case "!=":
		return func(f *file) bool { return get(f) != v }, nil
	case "contains":
		if field != "name" {
			break
		}
		return func(f *file) bool { return strings.Contains(strings.ToLower(get(f)), strings.ToLower(v)) }, nil
	case "<":
		return func(f *file) bool { return get(f) < v }, nil
	case "<=":
		return func(f *file) bool { return get(f) <= v }, nil
	case ">":
		return func(f *file) bool { return get(f) > v }, nil
	case ">=":
		return func(f *file) bool { return get(f) >= v }, nil
	}
	return nil, fmt.Errorf("operator %s not supported for %s", op, field)
}
