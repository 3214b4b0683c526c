package filter

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Options are Escale's filter options. The zero value keeps everything but
// the default ignores. See the package documentation for the syntax and
// the exact semantics.
type Options struct {
	// Include keeps only the files that match one of these patterns (a
	// glob or /regex/ on the base name, or on the relative path when the
	// pattern holds a slash). Escale: include, include files, pattern,
	// filter.
	Include []string
	// Exclude drops the files that match one of these patterns (same
	// syntax); it wins over Include. Escale: exclude, exclude files.
	Exclude []string
	// Extensions keeps only the files with one of these extensions ("txt"
	// or ".txt", case-insensitive). Escale: file extension, file type.
	Extensions []string
	// IncludeDirs, when set, keeps only these directories and their
	// subtrees: relative paths from the root whose components may be globs,
	// or /regex/ on the relative path. Files directly in the root are kept.
	// Escale: include directory, include directories.
	IncludeDirs []string
	// ExcludeDirs drops these directories and their subtrees: globs on
	// directory names (any depth), relative paths (with a slash) or /regex/
	// on the relative path. Escale: exclude directory, exclude directories.
	ExcludeDirs []string
	// NoDefaults keeps the files and directories of DefaultIgnores.
	NoDefaults bool
}

// A Filter is a compiled set of Options. It is safe for concurrent use.
type Filter struct {
	opts Options

	include, exclude fileRules
	exts             []string // with the leading dot

	exDirNames nameSet          // directory names, any depth
	exDirPaths []pathGlob       // relative paths (prefixes)
	exDirRes   []*regexp.Regexp // on relative paths of directories

	inDirs     bool // IncludeDirs is set
	inDirPaths []pathGlob
	inDirRes   []prefixRegexp
}

// fileRules are compiled Include or Exclude patterns.
type fileRules struct {
	n       int        // number of patterns
	names   nameSet    // globs on base names
	paths   []pathGlob // globs on relative paths
	nameRes []*regexp.Regexp
	pathRes []*regexp.Regexp
}

func (r *fileRules) match(rel, base string) bool {
	if r.names.match(base) {
		return true
	}
	for _, re := range r.nameRes {
		if re.MatchString(base) {
			return true
		}
	}
	for _, p := range r.paths {
		if p.matchAll(rel) {
			return true
		}
	}
	for _, re := range r.pathRes {
		if re.MatchString(rel) {
			return true
		}
	}
	return false
}

// Names of the options in error messages (Escale's names).
const (
	optInclude    = "include"
	optExclude    = "exclude"
	optExtension  = "file extension"
	optIncludeDir = "include directory"
	optExcludeDir = "exclude directory"
	optDefault    = "default ignore"
)

// expected describes the valid forms of each option's patterns.
var expected = map[string]string{
	optInclude:    "expected a glob on the file name such as *.txt, a glob on the relative path such as docs/*.md, or /regex/",
	optExclude:    "expected a glob on the file name such as *.tmp, a glob on the relative path such as docs/*.bak, or /regex/",
	optIncludeDir: "expected a relative path from the root such as docs or projects/*/src, or /regex/ on the relative path",
	optExcludeDir: "expected a glob on the directory name such as node_modules or *.cache, a relative path such as src/vendor or ./build, or /regex/ on the relative path",
	optDefault:    "expected a glob on the file name, or on the directory name followed by a slash",
}

// Compile checks and compiles o. A malformed pattern makes it fail with an
// error naming the option, the pattern and the expected form.
func Compile(o Options) (*Filter, error) {
	f := &Filter{opts: Options{
		Include:     clone(o.Include),
		Exclude:     clone(o.Exclude),
		Extensions:  clone(o.Extensions),
		IncludeDirs: clone(o.IncludeDirs),
		ExcludeDirs: clone(o.ExcludeDirs),
		NoDefaults:  o.NoDefaults,
	}}
	for _, p := range o.Include {
		if err := f.include.add(optInclude, p); err != nil {
			return nil, err
		}
	}
	for _, p := range o.Exclude {
		if err := f.exclude.add(optExclude, p); err != nil {
			return nil, err
		}
	}
	for _, e := range o.Extensions {
		ext, err := parseExtension(e)
		if err != nil {
			return nil, err
		}
		f.exts = append(f.exts, ext)
	}
	for _, p := range o.ExcludeDirs {
		if err := f.addExcludeDir(optExcludeDir, p, false); err != nil {
			return nil, err
		}
	}
	for _, p := range o.IncludeDirs {
		if err := f.addIncludeDir(p); err != nil {
			return nil, err
		}
	}
	if !o.NoDefaults {
		for _, p := range DefaultIgnores {
			if err := f.addDefault(p); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

func clone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// Skip reports whether the path rel (relative to the synced folder,
// slash-separated) is excluded, with everything below it when it is a
// directory. It has the signature of localdir.Options.Skip. A nil Filter
// skips nothing.
func (f *Filter) Skip(rel string, isDir bool) bool {
	if f == nil || rel == "" {
		return false
	}
	slash := strings.LastIndexByte(rel, '/')
	dir := rel // the directory part: rel itself, or a file's parent
	if !isDir {
		dir = rel[:max(slash, 0)]
	}
	if dir != "" {
		if f.excludedDir(dir) {
			return true
		}
		if f.inDirs {
			switch f.includedDir(dir) {
			case noMatch:
				return true
			case leadsTo:
				if !isDir {
					return true // a file on the way to an included directory
				}
			}
		}
	}
	if isDir {
		return false
	}
	base := rel[slash+1:]
	if f.exclude.match(rel, base) {
		return true
	}
	if len(f.exts) > 0 && !f.hasExtension(base) {
		return true
	}
	if f.include.n > 0 && !f.include.match(rel, base) {
		return true
	}
	return false
}

// excludedDir reports whether ExcludeDirs or the default ignores drop the
// directory dir (a non-empty relative path) or one of its ancestors.
func (f *Filter) excludedDir(dir string) bool {
	if !f.exDirNames.empty() {
		for i := 0; i <= len(dir); {
			comp, next := component(dir, i)
			if f.exDirNames.match(comp) {
				return true
			}
			i = next
		}
	}
	for _, p := range f.exDirPaths {
		if p.relate(dir) == matches {
			return true
		}
	}
	for _, re := range f.exDirRes {
		if anyAncestor(dir, re.MatchString) {
			return true
		}
	}
	return false
}

// includedDir tells whether the directory dir (a non-empty relative path)
// is in a subtree that IncludeDirs keeps (matches), on the way to one
// (leadsTo), or neither (noMatch).
func (f *Filter) includedDir(dir string) int {
	res := noMatch
	for _, p := range f.inDirPaths {
		switch p.relate(dir) {
		case matches:
			return matches
		case leadsTo:
			res = leadsTo
		}
	}
	for i := range f.inDirRes {
		r := &f.inDirRes[i]
		if anyAncestor(dir, r.re.MatchString) {
			return matches
		}
		if r.leadsTo(dir) {
			res = leadsTo
		}
	}
	return res
}

func (f *Filter) hasExtension(name string) bool {
	for _, ext := range f.exts {
		if len(name) > len(ext) && strings.EqualFold(name[len(name)-len(ext):], ext) {
			return true
		}
	}
	return false
}

// String summarises the filter for logs, e.g.
// `include [*.jpg] exclude-dirs [build], default ignores`.
func (f *Filter) String() string {
	if f == nil {
		return "no filter"
	}
	var parts []string
	list := func(name string, v []string) {
		if len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%s %q", name, v))
		}
	}
	list("include", f.opts.Include)
	list("exclude", f.opts.Exclude)
	list("extensions", f.opts.Extensions)
	list("include-dirs", f.opts.IncludeDirs)
	list("exclude-dirs", f.opts.ExcludeDirs)
	s := strings.Join(parts, " ")
	switch {
	case f.opts.NoDefaults && s == "":
		return "no filter"
	case f.opts.NoDefaults:
		return s
	case s == "":
		return "default ignores"
	}
	return s + ", default ignores"
}

// pattern is a parsed pattern: a regular expression or a glob.
type pattern struct {
	re     *regexp.Regexp // anchored at the start; nil for a glob
	lit    string         // literal prefix of every match of re
	glob   string         // cleaned glob, when re is nil
	onPath bool           // matched against the relative path, not a name
}

// parsePattern checks and parses the pattern p of option opt. Directory
// options accept (and ignore) one trailing slash.
func parsePattern(opt, p string, dir bool) (pattern, error) {
	fail := func(reason error) (pattern, error) {
		return pattern{}, fmt.Errorf("filter: %s pattern %q: %w; %s", opt, p, reason, expected[opt])
	}
	if strings.TrimSpace(p) == "" {
		return fail(errors.New("empty pattern"))
	}
	if p[0] == '/' {
		if len(p) < 2 || p[len(p)-1] != '/' {
			return fail(errors.New("a regular expression must end with a slash too (/regex/), and a path must not start with one"))
		}
		body := p[1 : len(p)-1]
		if body == "" {
			return fail(errors.New("empty regular expression"))
		}
		re, err := regexp.Compile(body)
		if err != nil {
			return fail(fmt.Errorf("invalid regular expression (Go RE2 syntax): %w", err))
		}
		lit, _ := re.LiteralPrefix()
		// body compiled alone, so its parentheses balance and the group
		// cannot be escaped.
		return pattern{
			re:     regexp.MustCompile(`^(?:` + body + `)`),
			lit:    lit,
			onPath: strings.Contains(body, "/"),
		}, nil
	}
	g := p
	if strings.HasSuffix(g, "/") {
		if !dir {
			return fail(errors.New("a file pattern cannot end with a slash (exclude directory drops directories)"))
		}
		g = g[:len(g)-1]
	}
	anchored := strings.HasPrefix(g, "./")
	if anchored {
		g = g[2:]
	}
	if g == "" {
		return fail(errors.New("no name"))
	}
	for c := range strings.SplitSeq(g, "/") {
		if err := checkGlob(c); err != nil {
			return fail(err)
		}
	}
	return pattern{glob: g, onPath: anchored || strings.Contains(g, "/")}, nil
}

// checkGlob checks one component of a glob.
func checkGlob(c string) error {
	switch c {
	case "":
		return errors.New("empty path component")
	case ".", "..":
		return fmt.Errorf("path component %q", c)
	}
	if strings.Contains(c, "**") {
		return errors.New("** is not supported (a glob without a slash matches names at any depth)")
	}
	for i := 0; i < len(c); i++ {
		if c[i] == '\\' && i+1 < len(c) {
			if !strings.ContainsRune(`*?[]\-^`, rune(c[i+1])) {
				return errors.New(`a backslash only escapes * ? [ ] \ - ^ (directories are separated by /)`)
			}
			i++
		}
	}
	if _, err := path.Match(c, ""); err != nil {
		return fmt.Errorf("invalid glob: %w", err)
	}
	return nil
}

func (r *fileRules) add(opt, p string) error {
	pt, err := parsePattern(opt, p, false)
	if err != nil {
		return err
	}
	r.n++
	switch {
	case pt.re != nil && pt.onPath:
		r.pathRes = append(r.pathRes, pt.re)
	case pt.re != nil:
		r.nameRes = append(r.nameRes, pt.re)
	case pt.onPath:
		r.paths = append(r.paths, newPathGlob(pt.glob))
	default:
		r.names.add(pt.glob, false)
	}
	return nil
}

func (f *Filter) addExcludeDir(opt, p string, fold bool) error {
	pt, err := parsePattern(opt, p, true)
	if err != nil {
		return err
	}
	switch {
	case pt.re != nil:
		f.exDirRes = append(f.exDirRes, pt.re)
	case pt.onPath:
		f.exDirPaths = append(f.exDirPaths, newPathGlob(pt.glob))
	default:
		f.exDirNames.add(pt.glob, fold)
	}
	return nil
}

func (f *Filter) addIncludeDir(p string) error {
	pt, err := parsePattern(optIncludeDir, p, true)
	if err != nil {
		return err
	}
	f.inDirs = true
	if pt.re != nil {
		f.inDirRes = append(f.inDirRes, prefixRegexp{re: pt.re, lit: pt.lit})
	} else {
		f.inDirPaths = append(f.inDirPaths, newPathGlob(pt.glob))
	}
	return nil
}

// addDefault adds an entry of DefaultIgnores: a name glob, for directories
// when it ends with a slash, matched ignoring ASCII case.
func (f *Filter) addDefault(p string) error {
	if strings.HasSuffix(p, "/") {
		pt, err := parsePattern(optDefault, p, true)
		if err == nil && (pt.re != nil || pt.onPath) {
			err = fmt.Errorf("filter: %s pattern %q: not a name; %s", optDefault, p, expected[optDefault])
		}
		if err != nil {
			return err
		}
		f.exDirNames.add(pt.glob, true)
		return nil
	}
	pt, err := parsePattern(optDefault, p, false)
	if err == nil && (pt.re != nil || pt.onPath) {
		err = fmt.Errorf("filter: %s pattern %q: not a name; %s", optDefault, p, expected[optDefault])
	}
	if err != nil {
		return err
	}
	f.exclude.names.add(pt.glob, true)
	return nil
}

// parseExtension checks an extension and returns it with a leading dot.
func parseExtension(e string) (string, error) {
	fail := func(reason string) (string, error) {
		return "", fmt.Errorf("filter: %s %q: %s; expected an extension such as txt, .jpg or tar.gz", optExtension, e, reason)
	}
	ext := strings.TrimPrefix(e, ".")
	switch {
	case strings.TrimSpace(ext) == "":
		return fail("empty extension")
	case strings.HasPrefix(ext, ".") || strings.HasSuffix(ext, ".") || strings.Contains(ext, ".."):
		return fail("empty part")
	case strings.ContainsAny(ext, `/\`):
		return fail("an extension cannot hold a slash or a backslash")
	case strings.ContainsAny(ext, "*?["):
		return fail("extensions are literal (use include for globs)")
	}
	return "." + ext, nil
}
