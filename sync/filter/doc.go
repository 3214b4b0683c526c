// Package filter compiles Escale-style filter options (include, exclude,
// file extension, include directory, exclude directory) and the default
// ignores into a Skip function for the local folder scanner
// (localdir.Options.Skip).
//
// # Paths
//
// Skip takes paths relative to the synced folder, slash-separated, never
// empty; the root itself is never asked about. A skipped directory is
// skipped with everything below it. Skip checks a path's ancestors itself,
// so it gives the same answer whether or not the caller already pruned the
// walk.
//
// # Pattern syntax
//
// Every pattern of every option is one of:
//
//   - a glob (path.Match syntax: * and ? never match a slash, [a-z] and
//     [^a-z] are classes, a backslash escapes one of * ? [ ] \ - ^). Without
//     a slash it matches a name; with a slash it matches a relative path
//     from the root, component by component (docs/*.md, src/*/testdata). A
//     leading ./ anchors a single name at the root (./notes.txt). Globs are
//     case-sensitive and match the whole name, not a prefix.
//   - /regex/: a slash at both ends around a Go regular expression (RE2
//     syntax). As in Escale (Python's re.match), it is anchored at the start
//     only: /IMG_/ matches IMG_0001.jpg, /.*\.txt/ matches a.txt.bak, and a
//     trailing $ anchors the end. Lookarounds and backreferences are not
//     RE2 and are rejected.
//
// Malformed patterns make Compile fail with an error that names the option,
// the pattern and the expected form: an empty or blank pattern, a regular
// expression without its closing slash (Escale made it optional) or with an
// empty or invalid body, an invalid glob (path.ErrBadPattern), a backslash
// escaping an ordinary character (most likely a Windows separator), a **
// (not supported), empty, . or .. path components, or a file pattern that
// ends with a slash. Patterns are otherwise used verbatim: spaces are part
// of them.
//
// # Files: Include, Exclude, Extensions
//
// These apply to files only (isDir false); they never skip a directory. A
// glob without a slash and a regular expression without a slash are matched
// against the file's base name; a glob or regular expression containing a
// slash is matched against the file's whole relative path. A file is kept
// when it matches at least one Include pattern (if any), has one of the
// Extensions (if any) and matches no Exclude pattern: Exclude wins over
// Include, and Include and Extensions must both hold when both are set, as
// in Escale.
//
// Extensions are literal, compared case-insensitively, with or without a
// leading dot ("txt", ".TXT"); an extension may have several parts
// ("tar.gz"). A file has extension e when its name ends with "."+e and has
// something before that dot, so the hidden file ".txt" has no extension.
// Escale compared Python's splitext case-sensitively and could not match
// "tar.gz".
//
// # Directories: ExcludeDirs
//
// An ExcludeDirs entry drops the directories it matches and everything below
// them. A glob without a slash matches a directory name at any depth
// (node_modules, *.cache); a glob with a slash matches a relative path from
// the root (src/vendor, ./build for the top-level build only); a trailing
// slash is allowed and ignored (build/ is build). A regular expression is
// matched against the directory's relative path (not its name), anchored at
// the start as in Escale: /build/ drops the top-level build, buildx and
// their subtrees, /(.*\/)?tmp$/ drops every directory named tmp.
//
// # Directories: IncludeDirs
//
// When IncludeDirs is set, only the listed subtrees are synced. Every entry
// names directories from the root (Escale "works properly only on top
// directories"): docs is the top-level docs only, and each component may be
// a glob (projects/*, */photos). A regular expression is matched against the
// relative path, anchored at the start.
//
// A directory that matches, and everything below it, is kept. The
// directories above a match are kept too so that it can be reached, but the
// files directly in them are skipped: with IncludeDirs [src/app], src is
// scanned, src/README is skipped, src/app/main.go is kept. For a regular
// expression the directories that may lead to a match are found through its
// literal prefix (/docs\/.*$/ only lets docs through); a regular expression
// without one, such as /.*photos/, lets every directory through.
//
// Files directly in the root stay synced (subject to the file options).
// Escale dropped them as a side effect (their dirname "" matched no pattern)
// on download but still uploaded them; escalefs keeps them on every node. To
// drop root files, name them with Exclude (./*.txt).
//
// ExcludeDirs and the default ignores win over IncludeDirs.
//
// # Default ignores
//
// Unless Options.NoDefaults is set, the patterns in DefaultIgnores are
// ignored: editors' and systems' temporary and housekeeping files that must
// never be synced. They are matched against base names at any depth,
// ignoring ASCII case (Thumbs.db, thumbs.db), and win over Include. To keep
// a few of them, set NoDefaults and copy the others into Exclude (file
// patterns) and ExcludeDirs (entries ending with a slash).
//
// Beyond these, dot-files are not special here. Escale never synced a name
// starting with a dot; a filter compiled by this package only skips the
// dot-files that its options and defaults name.
package filter
