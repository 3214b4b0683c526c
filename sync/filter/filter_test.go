package filter

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"
)

// A check is one Skip question and its expected answer. A path ending with
// a slash is a directory (the slash is removed).
type check struct {
	rel  string
	skip bool
}

func (c check) split() (string, bool) {
	if strings.HasSuffix(c.rel, "/") && len(c.rel) > 1 {
		return c.rel[:len(c.rel)-1], true
	}
	return c.rel, false
}

// keep and skip build checks.
func keep(rels ...string) []check { return checks(false, rels) }
func skip(rels ...string) []check { return checks(true, rels) }

func checks(s bool, rels []string) []check {
	out := make([]check, len(rels))
	for i, r := range rels {
		out[i] = check{r, s}
	}
	return out
}

func join(cs ...[]check) []check {
	var out []check
	for _, c := range cs {
		out = append(out, c...)
	}
	return out
}

func runChecks(t *testing.T, o Options, cs []check) {
	t.Helper()
	f, err := Compile(o)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", o, err)
	}
	for _, c := range cs {
		rel, isDir := c.split()
		if got := f.Skip(rel, isDir); got != c.skip {
			t.Errorf("%v: Skip(%q, isDir=%v) = %v, want %v", f, rel, isDir, got, c.skip)
		}
	}
}

func TestSkip(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		checks []check
	}{
		{
			name: "nothing",
			opts: Options{NoDefaults: true},
			checks: keep("a", "a/b/c.txt", "x/", ".DS_Store", "a/.Trash-1000/", "4913",
				".x.swp", "~$a.docx", "a b/ü.txt"),
		},
		{
			name: "defaults files",
			opts: Options{},
			checks: join(
				skip(".main.go.swp", "a/.main.go.swo", ".x.swn", ".x.swx", "4913", "a/b/4913",
					".report.kate-swp", "notes.txt~", "a/notes~", "#notes.txt#", ".#notes.txt",
					".~lock.report.odt#", "~$report.docx", "~WRL0001.tmp", "a/~DF12AB.tmp",
					".goutputstream-ABC123", "movie.mkv.part", "file.zip.crdownload",
					"x.filepart", "x.8f3a2c.partial", "~syncthing~x.txt.tmp", ".syncthing.x.txt.tmp",
					".nfs000000000189b4c500000001", ".fuse_hidden0000000100000002",
					".DS_Store", "a/b/.DS_Store", "._photo.jpg", "Thumbs.db", "ehthumbs.db",
					"desktop.ini",
					// ASCII case is ignored
					".ds_store", "THUMBS.DB", "Desktop.ini", "MOVIE.PART", ".X.SWP"),
				keep("main.go", ".bashrc", "a.swp", "swp", ".swp", "4913.txt", "notes~.txt",
					"x.part.txt", "part", "#notes", "notes#", "~report.docx", "x.tmp",
					"Thumbs.db.txt", "desktop.ini.bak", ".gitignore", ".Trash", "a/.Trashes",
					"ü.txt", "a b.txt"),
				// File patterns never skip a directory.
				keep("4913/", "backup~/", "x.part/", ".DS_Store/", "a/#x#/"),
			),
		},
		{
			name: "defaults directories",
			opts: Options{},
			checks: join(
				skip(".Spotlight-V100/", ".fseventsd/", ".Trashes/", "usb/.Trashes/",
					".TemporaryItems/", ".DocumentRevisions-V100/", "$RECYCLE.BIN/",
					"$Recycle.Bin/", "d/$Recycle.Bin/", "System Volume Information/",
					"system volume information/", ".Trash-1000/", ".Trash/", "home/.Trash/",
					// below them, asked without the ancestors
					".Trash-1000/files/a.txt", ".Trash-1000/files/", "$RECYCLE.BIN/S-1-5/x",
					"a/.Spotlight-V100/Store-V2/x"),
				keep("Trash/", "Trash-1000/x", "System Volume/", "RECYCLE.BIN/", "trashes/"),
			),
		},
		{
			name: "no defaults",
			opts: Options{NoDefaults: true},
			checks: keep(".DS_Store", ".x.swp", "a~", ".Trash-1000/", ".Trash-1000/files/a.txt",
				"$RECYCLE.BIN/", "4913"),
		},
		{
			name: "include name globs",
			opts: Options{Include: []string{"*.jpg", "IMG_????.png", "[0-9]*.txt", "README"}, NoDefaults: true},
			checks: join(
				keep("a.jpg", "x/y/b.jpg", "IMG_0001.png", "1st.txt", "README", "d/README"),
				// globs match the whole name, not a prefix as in Escale
				skip("a.jpg.bak", "IMG_00012.png", "a.JPG", "first.txt", "README.md", "notes.txt"),
				// file patterns never skip directories
				keep("photos/", "a/b/", "README.md/"),
			),
		},
		{
			name: "include regexp anchored at the start",
			opts: Options{Include: []string{`/IMG_\d+/`, `/.*\.txt$/`}, NoDefaults: true},
			checks: join(
				keep("IMG_1.png", "d/IMG_0001.jpg.bak", "a.txt", "d/e/.txt"),
				skip("x_IMG_1.png", "IMG_.png", "a.txt.bak", "a.TXT"),
			),
		},
		{
			name:   "include unanchored regexp written with .*",
			opts:   Options{Include: []string{`/.*IMG/`}, NoDefaults: true},
			checks: join(keep("x_IMG_1.png", "IMG"), skip("img")),
		},
		{
			name: "include path globs",
			opts: Options{Include: []string{"docs/*.md", "./TODO", "src/*/main.go"}, NoDefaults: true},
			checks: join(
				keep("docs/a.md", "TODO", "src/app/main.go"),
				skip("a.md", "docs/sub/a.md", "x/docs/a.md", "d/TODO", "src/main.go",
					"src/a/b/main.go", "docs/a.txt"),
				keep("docs/", "x/", "src/a/b/"),
			),
		},
		{
			name:   "include regexp with a slash matches the relative path",
			opts:   Options{Include: []string{`/docs\/.*\.md$/`}, NoDefaults: true},
			checks: join(keep("docs/a.md", "docs/x/y.md"), skip("a.md", "x/docs/a.md")),
		},
		{
			name: "exclude",
			opts: Options{Exclude: []string{"*.tmp", "core", "/.*\\.bak$/", "build/*.o", `\*`, `a\?`}, NoDefaults: true},
			checks: join(
				skip("a.tmp", "d/e/a.tmp", "core", "d/core", "x.bak", "d/x.bak", "build/a.o",
					"*", "a?"),
				keep("a.tmp.txt", "core.1", "score", "x.bak.txt", "a/build/a.o", "build/x/a.o",
					"a.o", "A.TMP", "x", "ab"),
				keep("core/", "a.tmp/", "build/"),
			),
		},
		{
			name:   "exclude wins over include",
			opts:   Options{Include: []string{"*.txt"}, Exclude: []string{"secret*"}, NoDefaults: true},
			checks: join(keep("a.txt", "d/a.txt"), skip("secret.txt", "d/secret-2.txt", "a.md")),
		},
		{
			name:   "defaults win over include",
			opts:   Options{Include: []string{"*.part", ".*"}},
			checks: join(skip("movie.part", ".DS_Store", "a.txt"), keep(".bashrc")),
		},
		{
			name: "extensions",
			opts: Options{Extensions: []string{"txt", ".JPG", "tar.gz"}, NoDefaults: true},
			checks: join(
				keep("a.txt", "A.TXT", "d/b.jpg", "c.Jpg", "x.tar.gz", "x.TAR.GZ", "a..txt",
					".bashrc.txt", "ü.txt"),
				skip(".txt", "txt", "a.txt.bak", "x.gz", "tar.gz", "a.text", "atxt", "a.md"),
				keep("dir/", "a.md/"),
			),
		},
		{
			name:   "extensions and include must both hold",
			opts:   Options{Extensions: []string{"jpg"}, Include: []string{"IMG_*"}, NoDefaults: true},
			checks: join(keep("IMG_1.jpg"), skip("IMG_1.png", "DSC_1.jpg")),
		},
		{
			name:   "extensions, include and exclude",
			opts:   Options{Extensions: []string{"jpg"}, Include: []string{"IMG_*"}, Exclude: []string{"*_draft.*"}, NoDefaults: true},
			checks: join(keep("IMG_1.jpg"), skip("IMG_1_draft.jpg")),
		},
		{
			name: "exclude directories",
			opts: Options{ExcludeDirs: []string{"node_modules", "*.cache", "src/vendor", "./build", "out/", "/tmp$/"}, NoDefaults: true},
			checks: join(
				skip("node_modules/", "a/b/node_modules/", "a/node_modules/x.js",
					"node_modules/x/y/", "x.cache/", "a/x.cache/b/", "a/.cache/f",
					"src/vendor/", "src/vendor/a/", "src/vendor/a.go", "build/", "build/x.o",
					"out/", "a/out/", "a/out/f", "tmp/", "tmp/x/", "tmp/f"),
				keep("node_modules", "a/x.cache", "vendor/", "a/src/vendor/", "src/", "src/a.go",
					"a/build/", "a/build/x.o", "build", "a/tmp/", "tmpx/", "tmp", "cache/",
					"x.cachex/"),
			),
		},
		{
			name: "exclude directories regexp is a prefix on the relative path",
			opts: Options{ExcludeDirs: []string{"/build/", `/(.*\/)?logs$/`}, NoDefaults: true},
			checks: join(
				skip("build/", "buildx/", "build/a/", "build/a/f", "logs/", "a/b/logs/", "a/logs/f"),
				keep("a/build/", "a/build/f", "logsx/", "a/logsx/", "build", "logs"),
			),
		},
		{
			name: "exclude directories path globs",
			opts: Options{ExcludeDirs: []string{"src/*/testdata", "*/tmp"}, NoDefaults: true},
			checks: join(
				skip("src/a/testdata/", "src/a/testdata/f", "x/tmp/", "x/tmp/y/"),
				keep("src/testdata/", "src/a/b/testdata/", "tmp/", "x/y/tmp/", "src/a/"),
			),
		},
		{
			name: "include directories",
			opts: Options{IncludeDirs: []string{"docs", "projects/*/src", "photos/"}, NoDefaults: true},
			checks: join(
				// root files stay
				keep("README", "a.txt"),
				keep("docs/", "docs/a.txt", "docs/sub/", "docs/sub/b.md", "photos/", "photos/x.jpg"),
				skip("other/", "other/x.txt", "other/sub/", "docsx/", "docsx/a", "a/docs/", "a/docs/x"),
				// the way to projects/*/src is kept, not the files on it
				keep("projects/", "projects/p1/", "projects/p1/src/", "projects/p1/src/main.go",
					"projects/p1/src/x/y.go"),
				skip("projects/readme", "projects/p1/Makefile", "projects/p1/test/", "projects/p1/test/x"),
			),
		},
		{
			name: "include directories regexp with a literal prefix",
			opts: Options{IncludeDirs: []string{`/docs\/(en|fr)$/`}, NoDefaults: true},
			checks: join(
				keep("top.txt", "docs/", "docs/en/", "docs/en/a.md", "docs/fr/x/y"),
				skip("docs/a.md", "other/", "other/x", "doc/", "en/"),
				// beyond the literal prefix, directories are let through but
				// their files are skipped
				keep("docs/de/"),
				skip("docs/de/a.md", "docs/english/a.md"),
			),
		},
		{
			name: "include directories regexp without a literal prefix",
			opts: Options{IncludeDirs: []string{`/.*photos/`}, NoDefaults: true},
			checks: join(
				keep("a/", "a/b/", "a/b/photos/", "a/b/photos/x.jpg", "photos2019/x.jpg", "x.jpg"),
				skip("a/x.jpg", "a/b/c.jpg"),
			),
		},
		{
			name:   "exclude directories win over include directories",
			opts:   Options{IncludeDirs: []string{"src"}, ExcludeDirs: []string{"src/vendor", "*.tmp", "src"}, NoDefaults: true},
			checks: skip("src/", "src/main.go"),
		},
		{
			name: "include and exclude directories",
			opts: Options{IncludeDirs: []string{"src"}, ExcludeDirs: []string{"src/vendor", "*.tmp"}, NoDefaults: true},
			checks: join(
				keep("src/", "src/main.go", "src/pkg/", "src/pkg/a.go"),
				skip("src/vendor/", "src/vendor/x.go", "src/a.tmp/", "src/pkg/b.tmp/c", "lib/"),
			),
		},
		{
			name: "include directories with defaults and file options",
			opts: Options{IncludeDirs: []string{"docs"}, Exclude: []string{"*.bak"}, Extensions: []string{"md", "txt"}},
			checks: join(
				keep("a.txt", "docs/a.md", "docs/x/b.txt"),
				skip("a.bak", "a.png", "docs/a.bak", "docs/.DS_Store", "docs/.Trashes/",
					"docs/a.png", "src/a.md"),
			),
		},
		{
			name: "everything",
			opts: Options{
				Include:     []string{"*.go", "/Makefile$/", "go.mod"},
				Exclude:     []string{"*_test.go", "gen/*.go"},
				Extensions:  []string{"go", "mod"}, // so Makefile is dropped
				IncludeDirs: []string{"cmd", "internal"},
				ExcludeDirs: []string{"testdata", "internal/old"},
			},
			checks: join(
				keep("go.mod", "cmd/", "cmd/main.go", "internal/x/y.go", "internal/x/"),
				skip("README.md", "cmd/main_test.go", "cmd/testdata/", "internal/x/testdata/a.go",
					"internal/old/", "internal/old/a.go", "docs/", "cmd/.main.go.swp",
					"cmd/Makefile", "cmd/notes.txt"),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runChecks(t, tt.opts, tt.checks)
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		bad  string   // the value the error must quote
		want []string // further substrings of the error
	}{
		{"empty include", Options{Include: []string{""}}, "", []string{"include pattern", "empty", "expected"}},
		{"blank exclude", Options{Exclude: []string{"  "}}, "  ", []string{"exclude pattern", "empty"}},
		{"unterminated regexp", Options{Exclude: []string{"/unterminated"}}, "/unterminated", []string{"/regex/"}},
		{"slash alone", Options{Include: []string{"/"}}, "/", []string{"/regex/"}},
		{"absolute path", Options{ExcludeDirs: []string{"/src/vendor"}}, "/src/vendor", []string{"exclude directory pattern", "/regex/"}},
		{"empty regexp", Options{Include: []string{"//"}}, "//", []string{"empty regular expression"}},
		{"bad regexp", Options{Include: []string{"/a(b/"}}, "/a(b/", []string{"RE2", "missing closing )"}},
		{"lookahead", Options{Exclude: []string{"/a(?=b)/"}}, "/a(?=b)/", []string{"RE2"}},
		{"bad class", Options{Exclude: []string{"[a-"}}, "[a-", []string{"invalid glob"}},
		{"bad glob in include", Options{Include: []string{"x/a["}}, "x/a[", []string{"include pattern", "invalid glob"}},
		{"trailing backslash", Options{Include: []string{`a\`}}, `a\`, []string{"invalid glob"}},
		{"windows separator", Options{ExcludeDirs: []string{`src\vendor`}}, `src\vendor`, []string{"backslash", "/"}},
		{"empty component", Options{Exclude: []string{"docs//x"}}, "docs//x", []string{"empty path component"}},
		{"dot dot", Options{Exclude: []string{"../x"}}, "../x", []string{`".."`}},
		{"dot", Options{IncludeDirs: []string{"."}}, ".", []string{"include directory pattern", `"."`}},
		{"dot slash", Options{Exclude: []string{"./"}}, "./", []string{"a file pattern cannot end with a slash"}},
		{"dot slash dir", Options{ExcludeDirs: []string{"./"}}, "./", []string{`path component "."`}},
		{"dot slash include dir", Options{IncludeDirs: []string{".//"}}, ".//", []string{"no name"}},
		{"file pattern ending with a slash", Options{Exclude: []string{"build/"}}, "build/", []string{"exclude directory"}},
		{"double star", Options{ExcludeDirs: []string{"**/node_modules"}}, "**/node_modules", []string{"**"}},
		{"empty exclude dir", Options{ExcludeDirs: []string{""}}, "", []string{"exclude directory pattern"}},
		{"bad include dir glob", Options{IncludeDirs: []string{"docs/[x"}}, "docs/[x", []string{"include directory pattern", "invalid glob"}},
		{"bad include dir regexp", Options{IncludeDirs: []string{"/docs"}}, "/docs", []string{"include directory pattern", "/regex/"}},
		{"empty extension", Options{Extensions: []string{""}}, "", []string{"file extension", "expected"}},
		{"dot extension", Options{Extensions: []string{"."}}, ".", []string{"file extension"}},
		{"double dot extension", Options{Extensions: []string{"..txt"}}, "..txt", []string{"file extension"}},
		{"trailing dot extension", Options{Extensions: []string{"tar."}}, "tar.", []string{"file extension"}},
		{"glob extension", Options{Extensions: []string{"*.txt"}}, "*.txt", []string{"include"}},
		{"slash extension", Options{Extensions: []string{"a/b"}}, "a/b", []string{"slash"}},
		{"second pattern", Options{Include: []string{"*.txt", "[z"}}, "[z", []string{"include pattern"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.opts)
			if err == nil {
				t.Fatalf("Compile(%+v) = %v, want an error", tt.opts, f)
			}
			msg := err.Error()
			if q := fmt.Sprintf("%q", tt.bad); !strings.Contains(msg, q) {
				t.Errorf("error %q does not name %s", msg, q)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestCompileErrorWrapsBadPattern(t *testing.T) {
	_, err := Compile(Options{Exclude: []string{"[x"}})
	if !errors.Is(err, path.ErrBadPattern) {
		t.Errorf("error %v does not wrap path.ErrBadPattern", err)
	}
}

func TestDefaultIgnoresCompile(t *testing.T) {
	for _, p := range DefaultIgnores {
		var err error
		if strings.HasSuffix(p, "/") {
			_, err = Compile(Options{ExcludeDirs: []string{p}, NoDefaults: true})
		} else {
			_, err = Compile(Options{Exclude: []string{p}, NoDefaults: true})
		}
		if err != nil {
			t.Errorf("default %q is not a valid exclude pattern: %v", p, err)
		}
	}
}

func TestBadDefaultIgnore(t *testing.T) {
	saved := DefaultIgnores
	t.Cleanup(func() { DefaultIgnores = saved })
	for _, bad := range []string{"[x", "/re/", "a/b", "a/b/"} {
		DefaultIgnores = append(append([]string(nil), saved...), bad)
		_, err := Compile(Options{})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("default ignore pattern %q", bad)) {
			t.Errorf("with default %q: Compile error = %v", bad, err)
		}
		if _, err := Compile(Options{NoDefaults: true}); err != nil {
			t.Errorf("with default %q and NoDefaults: %v", bad, err)
		}
	}
}

func TestCompileCopiesOptions(t *testing.T) {
	o := Options{Exclude: []string{"*.tmp"}}
	f, err := Compile(o)
	if err != nil {
		t.Fatal(err)
	}
	o.Exclude[0] = "*.txt"
	if !f.Skip("a.tmp", false) || f.Skip("a.txt", false) || strings.Contains(f.String(), "*.txt") {
		t.Errorf("the filter changed with its Options: %v", f)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{NoDefaults: true}, "no filter"},
		{Options{}, "default ignores"},
		{Options{Include: []string{"*.jpg"}, ExcludeDirs: []string{"build"}},
			`include ["*.jpg"] exclude-dirs ["build"], default ignores`},
		{Options{Exclude: []string{"/a b/"}, Extensions: []string{"txt"}, IncludeDirs: []string{"docs"}, NoDefaults: true},
			`exclude ["/a b/"] extensions ["txt"] include-dirs ["docs"]`},
	}
	for _, tt := range tests {
		f, err := Compile(tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	var f *Filter
	if f.String() != "no filter" || f.Skip("a", false) {
		t.Error("a nil Filter must skip nothing")
	}
}

// oddPaths returns paths made of awkward names: unicode, spaces, leading
// dots, glob and regexp metacharacters, invalid UTF-8, very long names, and
// malformed paths (empty components, leading or trailing slashes) that a
// caller should never pass but that must not crash Skip.
func oddPaths() []string {
	names := []string{
		"a", ".", "..", "...", ".a", ".DS_Store", " ", "  lead", "trail  ", "a b",
		"ü", "日本語.txt", "Ω.TXT", "\u212a", "e\u0301", "emoji😀.jpg", "\x00", "\xff\xfe",
		"\xe6\x97", "~", "#", "#x#", "~$", "[", "]", "*", "?", `\`, "$RECYCLE.BIN",
		".Trash-", ".tar.gz", "a.", "a..b", "node_modules", "docs", "src", "vendor",
		"IMG_0001.JPG", "4913", strings.Repeat("x", 300), strings.Repeat("é", 200) + ".txt",
	}
	var out []string
	for _, a := range names {
		out = append(out, a, "/"+a, a+"/", a+"//"+a)
		for _, b := range names {
			out = append(out, a+"/"+b)
		}
		out = append(out, a+"/docs/"+a, "docs/en/"+a, "src/vendor/"+a+"/"+a)
	}
	return append(out, "", "/", "//", "./a", "a/./b", "a/../b")
}

func propertyOptions() []Options {
	return []Options{
		{},
		{NoDefaults: true},
		{
			Include:     []string{"*.txt", "/IMG_/", "docs/*.md", `/.*\/x$/`, "日本*"},
			Exclude:     []string{"*~", "[ab]?", "/(?i)secret/", "./top", `\*`},
			Extensions:  []string{"txt", ".JPG", "tar.gz", "ü"},
			IncludeDirs: []string{"docs/en", "src", "/a/", "*/ü"},
			ExcludeDirs: []string{"node_modules", "*.cache", "src/vendor", "/tmp$/", "./build"},
		},
		{IncludeDirs: []string{`/.*/`, `/[[:alpha:]]+$/`}, ExcludeDirs: []string{"/./"}},
	}
}

// TestSkipProperties checks, on many odd paths, that Skip never panics,
// answers the same twice, and skips everything below a skipped directory.
func TestSkipProperties(t *testing.T) {
	paths := oddPaths()
	for _, o := range propertyOptions() {
		f, err := Compile(o)
		if err != nil {
			t.Fatalf("Compile(%+v): %v", o, err)
		}
		for _, p := range paths {
			for _, isDir := range []bool{false, true} {
				got := skipNoPanic(t, f, p, isDir)
				if again := f.Skip(p, isDir); again != got {
					t.Errorf("%v: Skip(%q, %v) changed from %v to %v", f, p, isDir, got, again)
				}
				if o.NoDefaults && len(o.Include)+len(o.Exclude)+len(o.Extensions)+len(o.IncludeDirs)+len(o.ExcludeDirs) == 0 && got {
					t.Errorf("%v: Skip(%q, %v) = true", f, p, isDir)
				}
				if !isDir || !got || p == "" || strings.HasSuffix(p, "/") {
					continue
				}
				for _, below := range []string{p + "/x", p + "/x.txt", p + "/docs/x.md"} {
					for _, d := range []bool{false, true} {
						if !skipNoPanic(t, f, below, d) {
							t.Errorf("%v: directory %q is skipped but not %q (isDir %v)", f, p, below, d)
						}
					}
				}
			}
		}
	}
}

func skipNoPanic(t *testing.T, f *Filter, p string, isDir bool) (skip bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%v: Skip(%q, %v) panicked: %v", f, p, isDir, r)
		}
	}()
	return f.Skip(p, isDir)
}

func TestSkipConcurrent(t *testing.T) {
	f, err := Compile(propertyOptions()[2])
	if err != nil {
		t.Fatal(err)
	}
	paths := oddPaths()
	want := make([]bool, len(paths))
	for i, p := range paths {
		want[i] = f.Skip(p, false)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i, p := range paths {
				if got := f.Skip(p, false); got != want[i] {
					t.Errorf("Skip(%q) = %v concurrently, %v alone", p, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

func TestSkipAllocs(t *testing.T) {
	f, err := Compile(benchOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range benchPaths {
		if n := testing.AllocsPerRun(100, func() { f.Skip(p.rel, p.dir) }); n != 0 {
			t.Errorf("Skip(%q) allocates %v times", p.rel, n)
		}
	}
}

// benchOptions is a typical set: a few excluded names and directories, and
// the defaults.
var benchOptions = Options{
	Exclude:     []string{"*.tmp", "*.bak", `/core\.\d+$/`, "*.o"},
	ExcludeDirs: []string{"node_modules", ".git", "./build", "*.cache", "src/vendor"},
}

var benchPaths = []struct {
	rel string
	dir bool
}{
	{"src/app/internal/handlers/user.go", false},
	{"src/app/internal/handlers", true},
	{"docs/img/Logo.PNG", false},
	{"Photos/2024/Summer Holidays/IMG_0001.JPG", false},
	{"Photos/2024/Summer Holidays/.DS_Store", false},
	{"README.md", false},
	{"a/b/c/d/e/f/g/h/notes.txt", false},
	{"web/node_modules", true},
	{"Documents/Thèse/chapitre 1.odt", false},
	{"Documents/Thèse/.~lock.chapitre 1.odt#", false},
}

func BenchmarkSkip(b *testing.B) {
	f, err := Compile(benchOptions)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := benchPaths[i%len(benchPaths)]
		f.Skip(p.rel, p.dir)
	}
}

func BenchmarkSkipIncludeDirs(b *testing.B) {
	o := benchOptions
	o.IncludeDirs = []string{"src", "docs", "Photos/*", "Documents"}
	o.Extensions = []string{"go", "md", "png", "jpg", "odt", "txt"}
	f, err := Compile(o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := benchPaths[i%len(benchPaths)]
		f.Skip(p.rel, p.dir)
	}
}

func TestDefaultIgnoresOtherShapes(t *testing.T) {
	saved := DefaultIgnores
	t.Cleanup(func() { DefaultIgnores = saved })
	long := strings.Repeat("Long", 20) // longer than the folded literal map holds
	DefaultIgnores = []string{"?EST*.LOG", long, "[Cc]ache*/"}
	runChecks(t, Options{}, join(
		skip("test1.log", "a/Best.Log", strings.ToLower(long), "Cache1/", "a/cache/f"),
		keep("est.log", "test.txt", long+"x", "xcache/", ".DS_Store"),
	))
}
