package filter

import (
	"path"
	"regexp"
	"strings"
)

// A nameGlob matches one path component (a name) against a glob. Common
// shapes (a literal, or a single * between a literal prefix and suffix) are
// matched without path.Match.
type nameGlob struct {
	kind     globKind
	pat      string // the glob; ASCII lower-case when fold
	pre, suf string // kind affix: pre*suf
	fold     bool   // ignore ASCII case
}

type globKind uint8

const (
	globLiteral globKind = iota
	globAffix
	globGeneral
)

func newNameGlob(pat string, fold bool) nameGlob {
	if fold {
		pat = asciiLower(pat)
	}
	g := nameGlob{pat: pat, fold: fold, kind: globGeneral}
	switch {
	case !strings.ContainsAny(pat, `*?[\`):
		g.kind = globLiteral
	case strings.Count(pat, "*") == 1 && !strings.ContainsAny(pat, `?[\`):
		i := strings.IndexByte(pat, '*')
		g.kind, g.pre, g.suf = globAffix, pat[:i], pat[i+1:]
	}
	return g
}

func (g *nameGlob) match(name string) bool {
	switch g.kind {
	case globLiteral:
		if g.fold {
			return equalFoldASCII(name, g.pat)
		}
		return name == g.pat
	case globAffix:
		if len(name) < len(g.pre)+len(g.suf) {
			return false
		}
		head, tail := name[:len(g.pre)], name[len(name)-len(g.suf):]
		if g.fold {
			return equalFoldASCII(head, g.pre) && equalFoldASCII(tail, g.suf)
		}
		return head == g.pre && tail == g.suf
	}
	if g.fold {
		name = asciiLower(name)
	}
	ok, _ := path.Match(g.pat, name) // validated by Compile
	return ok
}

// A nameSet matches a name against several globs.
type nameSet struct {
	exact   map[string]struct{} // case-sensitive literals
	folded  map[string]struct{} // literals ignoring ASCII case, lower-cased
	maxFold int                 // length of the longest key of folded
	globs   []nameGlob
}

// maxFoldKey bounds the literals kept in nameSet.folded, so that a name can
// be lower-cased into a buffer on the stack.
const maxFoldKey = 64

func (s *nameSet) add(pat string, fold bool) {
	g := newNameGlob(pat, fold)
	switch {
	case g.kind == globLiteral && !fold:
		if s.exact == nil {
			s.exact = make(map[string]struct{})
		}
		s.exact[g.pat] = struct{}{}
	case g.kind == globLiteral && len(g.pat) <= maxFoldKey:
		if s.folded == nil {
			s.folded = make(map[string]struct{})
		}
		s.folded[g.pat] = struct{}{}
		s.maxFold = max(s.maxFold, len(g.pat))
	default:
		s.globs = append(s.globs, g)
	}
}

func (s *nameSet) empty() bool {
	return len(s.exact) == 0 && len(s.folded) == 0 && len(s.globs) == 0
}

func (s *nameSet) match(name string) bool {
	if _, ok := s.exact[name]; ok {
		return true
	}
	if len(name) <= s.maxFold {
		var buf [maxFoldKey]byte
		b := buf[:len(name)]
		for i := range len(name) {
			b[i] = lowerASCII(name[i])
		}
		if _, ok := s.folded[string(b)]; ok { // no allocation
			return true
		}
	}
	for i := range s.globs {
		if s.globs[i].match(name) {
			return true
		}
	}
	return false
}

// A pathGlob is a glob on a relative path, one nameGlob per component.
type pathGlob []nameGlob

func newPathGlob(pat string) pathGlob {
	comps := strings.Split(pat, "/")
	p := make(pathGlob, len(comps))
	for i, c := range comps {
		p[i] = newNameGlob(c, false)
	}
	return p
}

// How a pathGlob relates to a directory path.
const (
	noMatch = iota // neither the directory nor anything below it matches
	leadsTo        // something below the directory may match
	matches        // the directory or one of its ancestors matches
)

// relate compares p with the leading components of the directory path dir.
func (p pathGlob) relate(dir string) int {
	i := 0
	for k := range p {
		if i > len(dir) {
			return leadsTo // dir has fewer components, all matching
		}
		comp, next := component(dir, i)
		if !p[k].match(comp) {
			return noMatch
		}
		i = next
	}
	return matches
}

// matchAll reports whether p matches the whole path rel.
func (p pathGlob) matchAll(rel string) bool {
	i := 0
	for k := range p {
		if i > len(rel) {
			return false
		}
		comp, next := component(rel, i)
		if !p[k].match(comp) {
			return false
		}
		i = next
	}
	return i > len(rel)
}

// component returns the component of p that starts at byte i and the start
// of the next one (len(p)+1 after the last).
func component(p string, i int) (string, int) {
	if j := strings.IndexByte(p[i:], '/'); j >= 0 {
		return p[i : i+j], i + j + 1
	}
	return p[i:], len(p) + 1
}

// anyAncestor reports whether f holds for dir or one of its ancestors
// (every prefix of dir that ends before a slash).
func anyAncestor(dir string, f func(string) bool) bool {
	for i := 0; i < len(dir); i++ {
		if dir[i] == '/' && f(dir[:i]) {
			return true
		}
	}
	return f(dir)
}

// A prefixRegexp is an IncludeDirs regular expression with the literal
// prefix of every match, which tells which directories may lead to one.
type prefixRegexp struct {
	re  *regexp.Regexp
	lit string
}

// leadsTo reports whether something below dir may match r.
func (r *prefixRegexp) leadsTo(dir string) bool {
	return strings.HasPrefix(dir, r.lit) ||
		len(r.lit) > len(dir) && r.lit[len(dir)] == '/' && strings.HasPrefix(r.lit, dir)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func asciiLower(s string) string {
	for i := range len(s) {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCII(b[j])
			}
			return string(b)
		}
	}
	return s
}

// equalFoldASCII reports whether s equals the lower-case lower, ignoring
// ASCII case.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := range len(s) {
		if lowerASCII(s[i]) != lower[i] {
			return false
		}
	}
	return true
}
