package config

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
)

// keyLine matches a line that sets a key to a basic or literal string, a
// boolean or a number, with an optional comment after it.
var keyLine = regexp.MustCompile(`^(\s*([A-Za-z0-9_-]+)\s*=\s*)("(?:[^"\\]|\\.)*"|'[^']*'|true|false|[0-9][0-9_]*)(\s*(?:#.*)?)$`)

// SetKeys rewrites the configuration file so that the table r sets each
// key of values, given as TOML values (`"text"`, `true`, `4`). A key the
// table sets already is changed on its own line, which must hold the whole
// value; the comment after it stays. The others are added after the line
// of the key after, which the table must set. Nothing else in the file
// changes. The new file must read back with those values before it
// replaces the old one, whose mode it keeps.
func (r *Repo) SetKeys(values map[string]string, after string) error {
	path := r.cfg.Path
	at, ok := r.Lines[after]
	if !ok {
		return fmt.Errorf("%s: [%s] sets no %s key to add keys after", path, r.Name, after)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	var added []string
	for _, k := range slices.Sorted(maps.Keys(values)) {
		line, ok := r.Lines[k]
		if !ok {
			added = append(added, k+" = "+values[k]+"\n")
			continue
		}
		if line < 1 || line > len(lines) {
			return fmt.Errorf("%s:%d: no such line", path, line)
		}
		old := lines[line-1]
		text := strings.TrimRight(old, "\r\n")
		m := keyLine.FindStringSubmatch(text)
		if m == nil || m[2] != k {
			return fmt.Errorf("%s:%d: the %s key is not written as %s = VALUE on one line", path, line, k, k)
		}
		lines[line-1] = m[1] + values[k] + m[4] + old[len(text):]
	}
	if at > len(lines) {
		return fmt.Errorf("%s:%d: no such line", path, at)
	}
	lines = slices.Insert(lines, at, added...)
	out := []byte(strings.Join(lines, ""))
	back, err := Parse(path, out)
	if err != nil {
		return fmt.Errorf("the edited file would not load: %w", err)
	}
	nr, ok := back.Repo(r.Name)
	if !ok {
		return fmt.Errorf("%s: the edited file has no table [%s]", path, r.Name)
	}
	for k, v := range values {
		if nr.Raw[k] != v {
			return fmt.Errorf("%s:%d: the edited file does not read back (%s = %s, not %s)", path, nr.Lines[k], k, nr.Raw[k], v)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".escalefs-tmp"
	if err := os.WriteFile(tmp, out, fi.Mode().Perm()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
