// Package config reads and validates escalefs's configuration file: a TOML
// file with a [global] table for the settings of the program as a whole
// (its log file) and one table per repository, named after it, whose keys
// are the names of the flags of escalefs sync and escalefs mount:
//
//	[global]
//	log-file = "~/.local/state/escalefs/escalefs.log"
//
//	[work]
//	path = "~/Work"
//	relay = "ftps://me@ftp.example.org/work"
//	key-file = "~/.config/escalefs/work.key"
//	refresh = "1m"
//	exclude = ["*.tmp", "*.log"]
//
// Every error names the file, the line, the key and the form expected.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// GlobalTable is the name of the table of global settings; no repository
// may take it.
const GlobalTable = "global"

// DefaultPath returns the configuration file read when none is given:
// $XDG_CONFIG_HOME/escalefs/config.toml, or ~/.config/escalefs/config.toml.
func DefaultPath() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "escalefs", "config.toml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory: set $XDG_CONFIG_HOME or $HOME (%v)", err)
	}
	return filepath.Join(home, ".config", "escalefs", "config.toml"), nil
}

// Config is a configuration file, read and validated.
type Config struct {
	// Path is the file it was read from.
	Path string
	// Global holds the [global] settings.
	Global Global
	// Repos are the repositories' tables, in the order of the file.
	Repos []*Repo
}

// Global are the settings of [global]; the zero value of a field means
// that the file does not set it.
type Global struct {
	LogFile       string // absolute
	LogMaxSize    int64  // bytes
	LogMaxBackups int
	LogLevel      string // debug, info, warn or error
	// Set holds the keys given, with their lines.
	Set map[string]int
}

// Repo is one repository's table.
type Repo struct {
	// Name is the table's name, which is the node's name unless a name
	// key is given.
	Name string
	// Line is the line of the table's header.
	Line int
	// Values maps each key given to its value: a string (paths made
	// absolute), int, bool, []string, time.Duration or, for sizes, an
	// int64 of bytes.
	Values map[string]any
	// Lines maps each key given to its line.
	Lines map[string]int
	// Raw maps each key given to its value as written in the file (a
	// size as "2GB", a duration as "10m"); for password, "(hidden)".
	Raw map[string]string

	cfg *Config
}

// Error is an error in a configuration file.
type Error struct {
	File  string
	Line  int    // 0 when the error is not on one line
	Where string // "[work] refresh = \"fast\"", or "" for the whole file
	Msg   string
	Err   error // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Where != "" {
		b.WriteString(e.Where + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads and validates the configuration file at path. The error of a
// file that does not exist wraps fs.ErrNotExist. The values are checked,
// but not the files they name: see Repo.CheckFiles.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration file: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if c.hasPassword() {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("reading the configuration file: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			r := c.Repos[slices.IndexFunc(c.Repos, func(r *Repo) bool { _, ok := r.Values["password"]; return ok })]
			return nil, &Error{File: path, Line: r.Lines["password"], Where: "[" + r.Name + "] password",
				Msg: fmt.Sprintf("the file holds a password but has mode %04o, so that others can read it; "+
					"run chmod 600 %s, or use password-file", perm, path)}
		}
	}
	return c, nil
}

func (c *Config) hasPassword() bool {
	for _, r := range c.Repos {
		if _, ok := r.Values["password"]; ok {
			return true
		}
	}
	return false
}

// Repo returns the repository named name.
func (c *Config) Repo(name string) (*Repo, bool) {
	i := slices.IndexFunc(c.Repos, func(r *Repo) bool { return r.Name == name })
	if i < 0 {
		return nil, false
	}
	return c.Repos[i], true
}

// Names returns the repositories' names.
func (c *Config) Names() []string {
	var out []string
	for _, r := range c.Repos {
		out = append(out, r.Name)
	}
	return out
}

// item is a key-value of the file, found by walking it.
type item struct {
	table string // "" at the top level
	key   string // dotted when written so
	line  int
	raw   string // key = value as written, on one line
}

// Parse parses and validates data, the content of the file at path (for
// messages and to resolve relative paths).
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{Path: path}
	items, tables, err := walk(path, data)
	if err != nil {
		return nil, err
	}
	// The file's tables, global and repositories, decoded strictly into a
	// struct with a field per table, which go-toml checks for unknown
	// keys and wrong types.
	var fields []reflect.StructField
	for i, t := range tables {
		typ := repoType
		if t.name == GlobalTable {
			typ = globalType
		}
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("T%d", i),
			Type: typ,
			Tag:  reflect.StructTag(fmt.Sprintf(`toml:"%s"`, t.name)),
		})
	}
	v := reflect.New(reflect.StructOf(fields))
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		return nil, decodeError(path, items, err)
	}
	byKey := map[[2]string]item{}
	for _, it := range items {
		byKey[[2]string{it.table, it.key}] = it
	}
	dir := filepath.Dir(path)
	for i, t := range tables {
		tv := v.Elem().Field(i)
		values, lines, raw := map[string]any{}, map[string]int{}, map[string]string{}
		for j := range tv.NumField() {
			name := tv.Type().Field(j).Tag.Get("toml")
			it, ok := byKey[[2]string{t.name, name}]
			if !ok {
				continue
			}
			k, _ := Lookup(name)
			val, why := k.convert(tv.Field(j).Interface())
			if why != "" {
				return nil, &Error{File: path, Line: it.line, Where: where(t.name, it.raw, name), Msg: why}
			}
			if k.Kind == File || k.Kind == Dir {
				val = resolve(dir, val.(string))
			}
			values[name], lines[name] = val, it.line
			raw[name] = rawValue(it.raw)
			if name == "password" {
				raw[name] = "(hidden)"
			}
		}
		if t.name == GlobalTable {
			c.Global = Global{Set: lines}
			c.Global.LogFile, _ = values["log-file"].(string)
			c.Global.LogMaxSize, _ = values["log-max-size"].(int64)
			c.Global.LogMaxBackups, _ = values["log-max-backups"].(int)
			c.Global.LogLevel, _ = values["log-level"].(string)
			continue
		}
		r := &Repo{Name: t.name, Line: t.line, Values: values, Lines: lines, Raw: raw, cfg: c}
		if err := r.checkTogether(); err != nil {
			return nil, err
		}
		c.Repos = append(c.Repos, r)
	}
	return c, nil
}

var (
	repoType   = tableType(false)
	globalType = tableType(true)
)

// tableType is the struct a table decodes into: one field per key.
func tableType(global bool) reflect.Type {
	var fields []reflect.StructField
	for i, k := range Keys {
		if k.Global != global {
			continue
		}
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("K%d", i),
			Type: k.Kind.goType(),
			Tag:  reflect.StructTag(fmt.Sprintf(`toml:"%s"`, k.Name)),
		})
	}
	return reflect.StructOf(fields)
}

type table struct {
	name string
	line int
}

// walk lists the file's tables and key-values, with their lines, and
// rejects what is not a table of keys: keys outside a table, nested
// tables, arrays of tables, table names that are no node names.
// keyParts returns the dotted parts of a key or table header and the line
// it starts on.
func keyParts(data []byte, it unstable.Iterator) (parts []string, line int) {
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = lineAt(data, int(n.Raw.Offset))
		}
		parts = append(parts, string(n.Data))
	}
	return parts, line
}

func walk(path string, data []byte) ([]item, []table, error) {
	var (
		p      unstable.Parser
		items  []item
		tables []table
		cur    = ""
	)
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, line := keyParts(data, e.Key())
			name := strings.Join(parts, ".")
			switch {
			case e.Kind == unstable.ArrayTable:
				return nil, nil, &Error{File: path, Line: line, Where: "[[" + name + "]]",
					Msg: "expected a table [NAME], one per repository, or [global]"}
			case len(parts) > 1:
				return nil, nil, &Error{File: path, Line: line, Where: "[" + name + "]",
					Msg: "expected a table [NAME], one per repository, or [global]: tables do not nest"}
			case !validName(name):
				return nil, nil, &Error{File: path, Line: line, Where: "[" + name + "]",
					Msg: "expected a repository name of letters, digits, '-', '_' and '.'"}
			}
			cur = name
			tables = append(tables, table{name: name, line: line})
		case unstable.KeyValue:
			parts, line := keyParts(data, e.Key())
			raw := string(p.Raw(e.Raw))
			if i := strings.IndexByte(raw, '\n'); i >= 0 {
				raw = strings.TrimSpace(raw[:i]) + " …"
			}
			key := strings.Join(parts, ".")
			if cur == "" {
				return nil, nil, &Error{File: path, Line: line, Where: raw,
					Msg: "key outside a table: put it in [global] (log settings) or in a repository's table [NAME]"}
			}
			items = append(items, item{table: cur, key: key, line: line, raw: raw})
		}
	}
	if err := p.Error(); err != nil {
		var pe *unstable.ParserError
		line := 0
		if errors.As(err, &pe) && pe.Highlight != nil {
			line = lineAt(data, cap(data)-cap(pe.Highlight))
		}
		return nil, nil, &Error{File: path, Line: line, Msg: "not valid TOML: " + err.Error(), Err: err}
	}
	return items, tables, nil
}

// validName reports whether a table's name can be a repository's: it
// names the node too, and appears in messages.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// lineAt is the 1-based line of offset in data.
func lineAt(data []byte, offset int) int {
	if offset < 0 || offset > len(data) {
		return 0
	}
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// where describes a key for an error message: "[work] refresh = \"fast\"",
// with the password's value hidden.
func where(table, raw, key string) string {
	if key == "password" {
		raw = "password"
	}
	return "[" + table + "] " + raw
}

// rawValue is the value part of "key = value".
func rawValue(raw string) string {
	if _, v, ok := strings.Cut(raw, "="); ok {
		return strings.TrimSpace(v)
	}
	return raw
}

// decodeError translates go-toml's errors into Errors that name the line,
// the key and the form expected.
func decodeError(path string, items []item, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) && len(sm.Errors) > 0 {
		de := sm.Errors[0]
		line, _ := de.Position()
		key := de.Key()
		w, table, name := keyWhere(items, key, line)
		msg := fmt.Sprintf("unknown key %q", name)
		if k, ok := Lookup(name); ok && k.Global && table != GlobalTable {
			msg += "; it belongs in [global]"
		} else if ok && !k.Global && table == GlobalTable {
			msg += " in [global]; it belongs in a repository's table"
		} else {
			msg += "; see the key reference in docs/configuration.md"
		}
		return &Error{File: path, Line: line, Where: w, Msg: msg, Err: err}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		w, _, name := keyWhere(items, de.Key(), line)
		msg := "not valid TOML: " + strings.TrimPrefix(de.Error(), "toml: ")
		if k, ok := Lookup(name); ok {
			msg = "expected " + k.Expected()
			if k.Kind == Duration {
				msg += " (in quotes)"
			}
		}
		return &Error{File: path, Line: line, Where: w, Msg: msg, Err: err}
	}
	return &Error{File: path, Msg: err.Error(), Err: err}
}

// keyWhere finds the item of key (table, then key parts) or at line.
func keyWhere(items []item, key toml.Key, line int) (w, table, name string) {
	if len(key) >= 2 {
		table, name = key[0], strings.Join(key[1:], ".")
	}
	for _, it := range items {
		if (it.table == table && (it.key == name || strings.HasPrefix(it.key, name+"."))) || (name == "" && it.line == line) {
			if name == "" {
				table, name = it.table, it.key
			}
			return where(it.table, it.raw, it.key), table, name
		}
	}
	if table != "" {
		return "[" + table + "] " + name, table, name
	}
	return "", table, name
}

// resolve makes a file name from the configuration absolute: ~ is the home
// directory, and a relative name is relative to the file's directory.
func resolve(dir, p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}

// checkTogether checks the keys that depend on each other.
func (r *Repo) checkTogether() error {
	_, pf := r.Values["passphrase-file"]
	_, kf := r.Values["key-file"]
	enc, encSet := r.Values["encryption"].(bool)
	switch {
	case pf && kf:
		return r.errorAt("key-file", "passphrase-file and key-file both given: expected one of them "+
			"(a repository is protected by either a passphrase or a key file)")
	case encSet && !enc && (pf || kf):
		return r.errorAt("encryption", "encryption = false with a passphrase-file or key-file: "+
			"expected the secret alone, for an encrypted repository, or encryption = false alone")
	}
	_, pw := r.Values["password"]
	_, pwf := r.Values["password-file"]
	if pw && pwf {
		return r.errorAt("password", "password and password-file both given: expected one of them")
	}
	return nil
}

func (r *Repo) errorAt(key, msg string) error {
	return &Error{File: r.cfg.Path, Line: r.Lines[key], Where: where(r.Name, key+" = "+r.Raw[key], key), Msg: msg}
}

// String returns the value of a string or file key, and whether it is set.
func (r *Repo) String(key string) (string, bool) {
	s, ok := r.Values[key].(string)
	return s, ok
}

// DurationOf returns the value of a duration key, and whether it is set.
func (r *Repo) DurationOf(key string) (time.Duration, bool) {
	d, ok := r.Values[key].(time.Duration)
	return d, ok
}

// CheckFiles checks that every file the repository's table names can be
// read; the error names the key, its line and the file.
func (r *Repo) CheckFiles() error {
	for _, k := range Keys {
		p, ok := r.Values[k.Name].(string)
		if !ok || k.Kind != File {
			continue
		}
		f, err := os.Open(p)
		if err == nil {
			f.Close()
			continue
		}
		why := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			why = pe.Err.Error()
		}
		return &Error{File: r.cfg.Path, Line: r.Lines[k.Name], Where: where(r.Name, k.Name+" = "+r.Raw[k.Name], k.Name),
			Msg: fmt.Sprintf("file %s %v (%s)", p, errNotReadable, why), Err: err}
	}
	return nil
}
