package config

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// EscaleTable is one section of an Escale configuration file converted into
// a repository table of escalefs.
type EscaleTable struct {
	// Name is the table's name: the section's, made valid.
	Name string
	// Values are the table's keys and values, ready for a TOML encoder:
	// strings, bools, ints and []string.
	Values map[string]any
	// Notes say what could not be carried over, or changes meaning.
	Notes []string
}

// escaleKeys maps each Escale option (any alias, lower case, single
// spaces) to its canonical field name.
var escaleKeys = map[string]string{}

func init() {
	for field, aliases := range map[string][]string{
		"path":        {"local path", "path"},
		"protocol":    {"protocol"},
		"address":     {"host address", "relay address", "remote address", "address"},
		"directory":   {"host directory", "relay directory", "remote directory", "directory", "relay dir", "remote dir", "host dir", "dir", "host path", "relay path", "remote path"},
		"port":        {"port", "host port", "relay port", "remote port"},
		"username":    {"user", "auth user", "host user", "relay user", "remote user", "username"},
		"password":    {"password", "secret", "secret file", "credential"},
		"refresh":     {"refresh"},
		"timestamp":   {"modification time", "timestamp", "mtime"},
		"client":      {"client name", "client"},
		"encryption":  {"encryption"},
		"passphrase":  {"passphrase", "key"},
		"push_only":   {"push only", "read only"},
		"pull_only":   {"pull only", "write only"},
		"mode":        {"mode", "synchronization mode"},
		"ssl_version": {"ssl version"},
		"verify_ssl":  {"verify ssl"},
		"certfile":    {"certfile", "cert file", "certificate"},
		"keyfile":     {"keyfile", "key file", "private key"},
		"filetype":    {"file extension", "file type"},
		"include":     {"include", "include files", "pattern", "filter"},
		"exclude":     {"exclude", "exclude files"},
		"includedir":  {"include directory", "include directories"},
		"excludedir":  {"exclude directory", "exclude directories"},
		"quota":       {"disk quota", "quota"},
		"maintainer":  {"maintainer", "email"},
		"locktimeout": {"lock timeout"},
		"count":       {"puller count", "pullers"},
		"checksum":    {"checksum", "hash algorithm"},
	} {
		for _, a := range aliases {
			escaleKeys[a] = field
		}
	}
}

// escaleDropped are Escale options escalefs has no use for, with why.
var escaleDropped = map[string]string{
	"checksum cache":        "escalefs keeps its own cache of fingerprints",
	"index":                 "escalefs always batches small files in packs",
	"compact":               "escalefs always batches small files in packs",
	"maxpagesize":           "escalefs sizes its packs itself",
	"maxarchivesize":        "escalefs sizes its packs itself",
	"pull overwrite":        "escalefs checks every pulled file against its record",
	"allow page deletion":   "no pages in escalefs",
	"page deletion":         "no pages in escalefs",
	"verbosity":             "use --log-level",
	"verbosity level":       "use --log-level",
	"retryonerror":          "escalefs retries transient relay errors itself",
	"retry on error":        "escalefs retries transient relay errors itself",
	"min split size":        "escalefs splits large files into parts itself",
	"split size":            "escalefs splits large files into parts itself",
	"split":                 "escalefs splits large files into parts itself",
	"max pending transfers": "escalefs bounds its transfers itself",
	"checksumcache":         "escalefs keeps its own cache of fingerprints",
}

var escaleSpaces = regexp.MustCompile(`[\s_]+`)

// ConvertEscale reads an Escale configuration file (INI: [sections],
// "key = value" or "key: value", # and ; comments, settings before the
// first section applying to every section) and converts each section into
// a table. A file of escalefs's own kind (TOML) is not this. dir resolves
// relative file names (the Escale file's directory).
func ConvertEscale(r io.Reader, dir string) ([]EscaleTable, error) {
	type section struct {
		name   string
		values map[string]string
		order  []string
	}
	global := &section{values: map[string]string{}}
	var sections []*section
	cur := global
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: %q: expected a section header such as [name]", n, line)
			}
			cur = &section{name: strings.TrimSpace(line[1 : len(line)-1]), values: map[string]string{}}
			sections = append(sections, cur)
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("line %d: %q: expected \"option = value\"", n, line)
		}
		k := escaleSpaces.ReplaceAllString(strings.ToLower(strings.TrimSpace(line[:i])), " ")
		if _, dup := cur.values[k]; !dup {
			cur.order = append(cur.order, k)
		}
		cur.values[k] = strings.TrimSpace(line[i+1:])
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(sections) == 0 {
		return nil, fmt.Errorf("no [section] found: an Escale configuration has one section per repository")
	}
	var out []EscaleTable
	for _, s := range sections {
		vals := map[string]string{}
		var order []string
		for _, k := range global.order {
			vals[k] = global.values[k]
			order = append(order, k)
		}
		for _, k := range s.order {
			if _, ok := vals[k]; !ok {
				order = append(order, k)
			}
			vals[k] = s.values[k]
		}
		t := convertSection(s.name, vals, order, dir)
		out = append(out, t)
	}
	return out, nil
}

// convertSection converts one section's options.
func convertSection(name string, vals map[string]string, order []string, dir string) EscaleTable {
	t := EscaleTable{Name: tableName(name), Values: map[string]any{}}
	note := func(format string, args ...any) { t.Notes = append(t.Notes, fmt.Sprintf(format, args...)) }
	if t.Name != name {
		note("section [%s] is table [%s] (names keep to letters, digits, '-', '_' and '.')", name, t.Name)
	}
	fields := map[string]string{}
	for _, k := range order {
		if why, ok := escaleDropped[k]; ok {
			note("%q dropped: %s", k, why)
			continue
		}
		f, ok := escaleKeys[k]
		if !ok {
			note("%q is not an Escale option escalefs knows; dropped", k)
			continue
		}
		fields[f] = vals[k]
	}
	file := func(p string) string {
		p = strings.Trim(p, `"'`)
		if strings.HasPrefix(p, "~/") {
			if home, err := os.UserHomeDir(); err == nil {
				p = filepath.Join(home, p[2:])
			}
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return p
	}
	isFile := func(p string) bool {
		fi, err := os.Stat(file(p))
		return err == nil && fi.Mode().IsRegular()
	}
	list := func(v string) []string {
		var out []string
		for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			out = append(out, strings.Trim(s, `"'`))
		}
		return out
	}
	if v, ok := fields["path"]; ok {
		t.Values["path"] = file(v)
	}
	if v, ok := fields["client"]; ok && v != "" {
		t.Values["name"] = v
	}
	if u, ok := escaleRelay(fields, note); ok {
		t.Values["relay"] = u
	}
	if v, ok := fields["username"]; ok && v != "" {
		t.Values["username"] = v
	}
	if v, ok := fields["password"]; ok && v != "" {
		if isFile(v) {
			t.Values["password-file"] = file(v)
		} else {
			t.Values["password"] = v
			note("the relay password is written in the table: keep the file mode 0600, or move it to a password-file")
		}
	}
	if v, ok := fields["refresh"]; ok {
		switch b, isBool := escaleBool(v); {
		case isBool && b:
			t.Values["refresh"] = "30s"
		case isBool:
			note("refresh = %s: escalefs always polls; the default (10s) applies", v)
		default:
			if sec, err := strconv.ParseFloat(v, 64); err == nil && sec > 0 {
				t.Values["refresh"] = strconv.FormatFloat(sec, 'f', -1, 64) + "s"
			} else {
				note("refresh = %s: expected seconds; dropped", v)
			}
		}
	}
	if v, ok := fields["timestamp"]; ok {
		note("%q = %s dropped: escalefs always keeps modification times", "modification time", v)
	}
	mode := ""
	if v, ok := fields["mode"]; ok {
		switch m := strings.ToLower(v); {
		case m == "upload" || m == "download" || m == "conservative":
			mode = m
		case strings.HasPrefix(m, "share"):
			mode = "shared"
		case m == "protective":
			mode = "conservative"
		default:
			note("mode = %s is not a mode escalefs knows (shared, upload, download, conservative); dropped", v)
		}
	}
	if b, _ := escaleBool(fields["push_only"]); b {
		mode = "upload"
	}
	if b, _ := escaleBool(fields["pull_only"]); b {
		if mode == "upload" && fields["push_only"] != "" {
			note("both push only and pull only set: Escale refused that; mode left out")
			mode = ""
		} else {
			mode = "download"
		}
	}
	if mode != "" && mode != "shared" {
		t.Values["mode"] = mode
	}
	if v, ok := fields["encryption"]; ok {
		b, isBool := escaleBool(v)
		switch l := strings.ToLower(v); {
		case isBool && !b, l == "plain":
			t.Values["encryption"] = false
		default:
			note("encryption = %s: escalefs encrypts with its own format (age); files Escale encrypted on the relay cannot be read, so start the relay afresh", v)
		}
	}
	if v, ok := fields["passphrase"]; ok && v != "" {
		if isFile(v) {
			t.Values["passphrase-file"] = file(v)
			note("the passphrase file's first line is taken as the repository passphrase")
		} else {
			note("the passphrase is written in the Escale file: put it in a file (mode 0600) and set passphrase-file")
		}
	}
	if v, ok := fields["ssl_version"]; ok {
		switch strings.ToLower(v) {
		case "tlsv1.2":
			t.Values["ssl-version"] = "1.2"
		case "tlsv1.1":
			t.Values["ssl-version"] = "1.1"
		case "tlsv1":
			t.Values["ssl-version"] = "1.0"
		case "tls", "sslv23":
			note("ssl version = %s: escalefs negotiates the highest TLS version by default", v)
		default:
			note("ssl version = %s: SSL is not supported; dropped", v)
		}
	}
	if v, ok := fields["verify_ssl"]; ok {
		if b, isBool := escaleBool(v); isBool {
			t.Values["verify-ssl"] = b
		}
	}
	if v, ok := fields["certfile"]; ok {
		t.Values["certificate"] = file(v)
	}
	if v, ok := fields["keyfile"]; ok {
		t.Values["certificate-key"] = file(v)
	}
	for f, key := range map[string]string{"filetype": "extension", "include": "include", "exclude": "exclude",
		"includedir": "include-dir", "excludedir": "exclude-dir"} {
		if v, ok := fields[f]; ok && v != "" {
			t.Values[key] = list(v)
		}
	}
	if v, ok := fields["quota"]; ok && v != "" {
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			v += "MB" // Escale's unit
		}
		t.Values["disk-quota"] = strings.ReplaceAll(v, " ", "")
	}
	if v, ok := fields["maintainer"]; ok && v != "" {
		t.Values["maintainer"] = v
	}
	if v, ok := fields["locktimeout"]; ok {
		switch b, isBool := escaleBool(v); {
		case isBool && b:
		case isBool:
			t.Values["lock-timeout"] = "-1s"
			note("lock timeout = %s: silent pullers hold collection back forever", v)
		default:
			if s, err := strconv.Atoi(v); err == nil && s > 0 {
				t.Values["lock-timeout"] = strconv.Itoa(s) + "s"
			} else {
				note("lock timeout = %s: expected seconds; dropped", v)
			}
		}
	}
	if v, ok := fields["count"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			t.Values["pullers"] = n
		} else {
			note("puller count = %s: expected a number; dropped", v)
		}
	}
	if v, ok := fields["checksum"]; ok {
		if strings.EqualFold(v, "sha256") {
			t.Values["checksum"] = "sha256"
		} else {
			note("checksum = %s: escalefs checks content with SHA-256", v)
		}
	}
	slices.Sort(t.Notes)
	return t
}

// escaleRelay builds the relay URL from Escale's protocol, address, port
// and directory.
func escaleRelay(f map[string]string, note func(string, ...any)) (string, bool) {
	addr, dirPath := f["address"], f["directory"]
	proto := strings.ToLower(f["protocol"])
	if addr == "" && strings.HasPrefix(dirPath, "/") && (proto == "" || proto == "file") {
		return "file://" + dirPath, true
	}
	if addr == "" {
		note("no relay address: set relay")
		return "", false
	}
	if u, err := url.Parse(addr); err == nil && u.Scheme != "" && (u.Host != "" || u.Scheme == "file") {
		proto = u.Scheme
		if dirPath != "" {
			u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.TrimPrefix(dirPath, "/")
		}
		addr = u.String()
		return mapScheme(addr, proto, note)
	}
	if strings.HasPrefix(addr, "/") {
		return "file://" + filepath.Join(addr, dirPath), true
	}
	if proto == "" {
		proto = "ftp"
		note("no protocol given: ftp assumed, as Escale did")
	}
	host := addr
	if p := f["port"]; p != "" {
		host += ":" + p
	}
	u := &url.URL{Scheme: proto, Host: host, Path: "/" + strings.TrimPrefix(dirPath, "/")}
	if user := f["username"]; user != "" {
		u.User = url.User(user)
	}
	return mapScheme(u.String(), proto, note)
}

// mapScheme turns Escale's protocol names into escalefs's schemes.
func mapScheme(raw, proto string, note func(string, ...any)) (string, bool) {
	scheme := proto
	switch proto {
	case "ftp", "ftps", "webdav", "webdavs", "file":
	case "http":
		scheme = "webdav"
	case "https":
		scheme = "webdavs"
	case "google", "googledrive", "drive":
		scheme = "gdrive"
	default:
		note("protocol %s is not a relay escalefs supports (ftp, ftps, webdav, webdavs, gdrive, file)", proto)
		return "", false
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		raw = scheme + raw[i:]
	}
	return raw, true
}

// escaleBool reads Escale's booleans.
func escaleBool(v string) (b, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "yes", "true", "on":
		return true, true
	case "0", "no", "false", "off":
		return false, true
	}
	return false, false
}

// tableName makes a section name a valid table name.
func tableName(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "repository"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}
