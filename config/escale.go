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
	// Password is the relay password taken out of an Escale credential
	// file whose line is "user:password": the caller writes it to a
	// private file and names that file as password-file.
	Password string
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
	"drive binary":          "escalefs talks to Google Drive itself",
	"rclone binary":         "escalefs does not run rclone",
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
		// Escale read its file with Python's configparser, whose
		// interpolation makes "%%" a "%".
		cur.values[k] = strings.ReplaceAll(strings.TrimSpace(line[i+1:]), "%%", "%")
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
	c := &sectionConverter{t: EscaleTable{Name: tableName(name), Values: map[string]any{}}, fields: map[string]string{}, dir: dir}
	if c.t.Name != name {
		c.note("section [%s] is table [%s] (names keep to letters, digits, '-', '_' and '.')", name, c.t.Name)
	}
	for _, k := range order {
		if why, ok := escaleDropped[k]; ok {
			c.note("%q dropped: %s", k, why)
			continue
		}
		f, ok := escaleKeys[k]
		if !ok {
			c.note("%q is not an Escale option escalefs knows; dropped", k)
			continue
		}
		c.fields[f] = vals[k]
	}
	c.node()
	c.refresh()
	c.mode()
	c.secrets()
	c.tls()
	c.filters()
	c.collection()
	slices.Sort(c.t.Notes)
	return c.t
}

// sectionConverter converts the options of one section (fields: the
// escalefs names of Escale's options) into a table.
type sectionConverter struct {
	t      EscaleTable
	fields map[string]string
	dir    string // of the Escale file: relative paths are from there
}

func (c *sectionConverter) note(format string, args ...any) {
	c.t.Notes = append(c.t.Notes, fmt.Sprintf(format, args...))
}

// file is the absolute path of an Escale path option.
func (c *sectionConverter) file(p string) string {
	p = strings.Trim(p, `"'`)
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[2:])
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.dir, p)
	}
	return p
}

func (c *sectionConverter) isFile(p string) bool {
	fi, err := os.Stat(c.file(p))
	return err == nil && fi.Mode().IsRegular()
}

// set sets key to the value of field, if the section gives it (and not
// empty, with nonEmpty).
func (c *sectionConverter) set(field, key string, nonEmpty bool) {
	if v, ok := c.fields[field]; ok && (!nonEmpty || v != "") {
		c.t.Values[key] = v
	}
}

// node converts the folder, the node's name and the relay.
func (c *sectionConverter) node() {
	if v, ok := c.fields["path"]; ok {
		c.t.Values["path"] = c.file(v)
	}
	c.set("client", "name", true)
	escaleCredential(&c.t, c.fields, c.file, c.isFile, c.note)
	if u, ok := escaleRelay(c.fields, c.note); ok {
		c.t.Values["relay"] = u
	}
	c.set("username", "username", true)
	if v, ok := c.fields["timestamp"]; ok {
		c.note("%q = %s dropped: escalefs always keeps modification times", "modification time", v)
	}
}

func (c *sectionConverter) refresh() {
	v, ok := c.fields["refresh"]
	if !ok {
		return
	}
	// Escale's own example writes "refresh = 300 # in seconds".
	if i := strings.IndexAny(v, "#;"); i > 0 {
		v = strings.TrimSpace(v[:i])
	}
	switch b, isBool := escaleBool(v); {
	case isBool && b:
		c.t.Values["refresh"] = "30s"
	case isBool:
		c.note("refresh = %s: escalefs always polls; the default (10s) applies", v)
	default:
		if sec, err := strconv.ParseFloat(v, 64); err == nil && sec > 0 {
			c.t.Values["refresh"] = strconv.FormatFloat(sec, 'f', -1, 64) + "s"
		} else {
			c.note("refresh = %s: expected seconds; dropped", v)
		}
	}
}

func (c *sectionConverter) mode() {
	mode := ""
	if v, ok := c.fields["mode"]; ok {
		switch m := strings.ToLower(v); {
		case m == "upload" || m == "download" || m == "conservative":
			mode = m
		case strings.HasPrefix(m, "share"):
			mode = "shared"
		case m == "protective":
			mode = "conservative"
		default:
			c.note("mode = %s is not a mode escalefs knows (shared, upload, download, conservative); dropped", v)
		}
	}
	if b, _ := escaleBool(c.fields["push_only"]); b {
		mode = "upload"
	}
	if b, _ := escaleBool(c.fields["pull_only"]); b {
		if mode == "upload" && c.fields["push_only"] != "" {
			c.note("both push only and pull only set: Escale refused that; mode left out")
			mode = ""
		} else {
			mode = "download"
		}
	}
	if mode != "" && mode != "shared" {
		c.t.Values["mode"] = mode
	}
}

// secrets converts the encryption and the passphrase.
func (c *sectionConverter) secrets() {
	if v, ok := c.fields["encryption"]; ok {
		b, isBool := escaleBool(v)
		switch l := strings.ToLower(v); {
		case isBool && !b, l == "plain":
			c.t.Values["encryption"] = false
		default:
			c.note("encryption = %s: escalefs encrypts with its own format (age); files Escale encrypted on the relay cannot be read, so start the relay afresh", v)
		}
	}
	if v, ok := c.fields["passphrase"]; ok && v != "" {
		if c.isFile(v) {
			c.t.Values["passphrase-file"] = c.file(v)
			c.note("the passphrase file's first line is taken as the repository passphrase")
		} else {
			c.note("the passphrase is written in the Escale file: put it in a file (mode 0600) and set passphrase-file")
		}
	}
}

func (c *sectionConverter) tls() {
	if v, ok := c.fields["ssl_version"]; ok {
		switch strings.ToLower(v) {
		case "tlsv1.2":
			c.t.Values["ssl-version"] = "1.2"
		case "tlsv1.1":
			c.t.Values["ssl-version"] = "1.1"
		case "tlsv1":
			c.t.Values["ssl-version"] = "1.0"
		case "tls", "sslv23":
			c.note("ssl version = %s: escalefs negotiates the highest TLS version by default", v)
		default:
			c.note("ssl version = %s: SSL is not supported; dropped", v)
		}
	}
	if v, ok := c.fields["verify_ssl"]; ok {
		if b, isBool := escaleBool(v); isBool {
			c.t.Values["verify-ssl"] = b
		}
	}
	if v, ok := c.fields["certfile"]; ok {
		c.t.Values["certificate"] = c.file(v)
	}
	if v, ok := c.fields["keyfile"]; ok {
		c.t.Values["certificate-key"] = c.file(v)
	}
}

func (c *sectionConverter) filters() {
	list := func(v string) []string {
		var out []string
		for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			out = append(out, strings.Trim(s, `"'`))
		}
		return out
	}
	for f, key := range map[string]string{"filetype": "extension", "include": "include", "exclude": "exclude",
		"includedir": "include-dir", "excludedir": "exclude-dir"} {
		if v, ok := c.fields[f]; ok && v != "" {
			c.t.Values[key] = list(v)
		}
	}
}

// collection converts the disk quota, the maintainer, the lock timeout,
// the puller count and the checksum.
func (c *sectionConverter) collection() {
	if v, ok := c.fields["quota"]; ok && v != "" {
		if q, err := escaleQuota(v); err != nil {
			c.note("disk quota = %s: %v; dropped (Escale ran without a quota then too)", v, err)
		} else {
			c.t.Values["disk-quota"] = q
		}
	}
	c.set("maintainer", "maintainer", true)
	if v, ok := c.fields["locktimeout"]; ok {
		switch b, isBool := escaleBool(v); {
		case isBool && b:
		case isBool:
			c.t.Values["lock-timeout"] = "-1s"
			c.note("lock timeout = %s: silent pullers hold collection back forever", v)
		default:
			if s, err := strconv.Atoi(v); err == nil && s > 0 {
				c.t.Values["lock-timeout"] = strconv.Itoa(s) + "s"
			} else {
				c.note("lock timeout = %s: expected seconds; dropped", v)
			}
		}
	}
	if v, ok := c.fields["count"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			c.t.Values["pullers"] = n
		} else {
			c.note("puller count = %s: expected a number; dropped", v)
		}
	}
	if v, ok := c.fields["checksum"]; ok {
		if strings.EqualFold(v, "sha256") {
			c.t.Values["checksum"] = "sha256"
		} else {
			c.note("checksum = %s: escalefs checks content with SHA-256", v)
		}
	}
}

// escaleRclone are the protocols Escale reached through rclone (or the
// drive tool's cousins), which escalefs does not run.
var escaleRclone = []string{"rclone", "amazoncloud", "b2", "dropbox", "googlecloud", "hubic", "onedrive", "swift",
	"s3", "sftp", "yandex"}

// escaleRelay builds the relay URL from Escale's protocol, address, port
// and directory, as Escale's parse_address and its backends read them.
func escaleRelay(f map[string]string, note func(string, ...any)) (string, bool) {
	proto, addr, port, dirPath := escaleAddress(f)
	switch {
	case proto == "file" || proto == "" && addr == "" || proto == "" && strings.HasPrefix(addr, "/"):
		p := dirPath
		if addr != "" {
			p = filepath.Join(addr, dirPath)
		}
		if !strings.HasPrefix(p, "/") {
			note("no relay address: set relay")
			return "", false
		}
		return (&url.URL{Scheme: "file", Path: p}).String(), true
	case isGdrive(proto):
		note("Google Drive: escalefs talks to Drive itself, without the drive tool; run escalefs auth gdrive once, " +
			"then set credentials to the token it writes")
		return (&url.URL{Scheme: "gdrive", Path: "/" + strings.Trim(joinPath(addrIfPath(addr), dirPath), "/")}).String(), true
	case slices.Contains(escaleRclone, proto):
		note("protocol %s: Escale reached this relay through rclone, which escalefs does not run; "+
			"serve the remote with rclone serve webdav (or sftp) and give that URL as relay, or use escalefs's own "+
			"sftp:// or s3:// relay; the table is not written until it has a relay", proto)
		return "", false
	case addr == "":
		note("no relay address: set relay")
		return "", false
	}
	scheme, ok := escaleScheme(proto, note)
	if !ok {
		return "", false
	}
	host := addr
	if port != "" {
		host += ":" + port
	}
	u := &url.URL{Scheme: scheme, Host: host, Path: "/" + strings.Trim(dirPath, "/")}
	if user := f["username"]; user != "" {
		u.User = url.User(user)
	}
	return u.String(), true
}

// escaleAddress reads Escale's protocol, address, port and directory. An
// address may be a URL: proto://host[:port][/path], or for Google Drive
// and rclone proto:///mount//path or proto://path.
func escaleAddress(f map[string]string) (proto, addr, port, dirPath string) {
	addr, dirPath, port = f["address"], f["directory"], f["port"]
	proto = strings.ToLower(f["protocol"])
	if i := strings.Index(addr, "://"); i > 0 && !strings.ContainsAny(addr[:i], "/ ") {
		if proto == "" {
			proto = strings.ToLower(addr[:i])
		}
		rest := addr[i+3:]
		switch {
		case isGdrive(proto) || slices.Contains(escaleRclone, proto):
			if j := strings.Index(rest, "//"); strings.HasPrefix(rest, "/") && j >= 0 {
				rest = rest[j+2:] // the mount point is the drive tool's
			} else if strings.HasPrefix(rest, "/") {
				rest = ""
			}
			addr = ""
			dirPath = joinPath(rest, dirPath)
		default:
			host, p, _ := strings.Cut(rest, "/")
			addr = host
			dirPath = joinPath(p, dirPath)
		}
	}
	if h, p, ok := strings.Cut(addr, ":"); ok && !strings.Contains(p, "/") && port == "" {
		addr, port = h, p
	}
	return proto, addr, port, dirPath
}

// escaleScheme is the relay URL scheme of Escale's protocol for a server.
func escaleScheme(proto string, note func(string, ...any)) (string, bool) {
	switch proto {
	case "":
		note("no protocol given: ftp assumed, as Escale did")
		return "ftp", true
	case "ftp", "ftps":
		return proto, true
	case "http":
		return "webdav", true
	case "https", "webdav", "webdavs":
		return "webdavs", true // Escale's webdav is WebDAV over HTTPS
	}
	note("protocol %s is not a relay escalefs supports (ftp, ftps, webdav, webdavs, gdrive, file, sftp, s3)", proto)
	return "", false
}

func isGdrive(proto string) bool {
	return proto == "google" || proto == "googledrive" || proto == "drive" || proto == "gdrive"
}

// addrIfPath is a Google Drive address that names a folder rather than
// the drive tool's mount point: none.
func addrIfPath(addr string) string {
	if addr == "" || strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "~") {
		return "" // the drive tool's mount point
	}
	return addr
}

func joinPath(a, b string) string {
	a, b = strings.Trim(a, "/"), strings.Trim(b, "/")
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// escaleCredential reads Escale's password option: a password, or a
// credential file holding the password or "user:password" lines. With
// user set, a one-line file is the password (less a leading "user:");
// without, the first line is "user:password" (what Escale's wizard
// writes), whose user then names the relay's user.
func escaleCredential(t *EscaleTable, fields map[string]string, file func(string) string, isFile func(string) bool,
	note func(string, ...any)) {
	v := fields["password"]
	if v == "" {
		return
	}
	if !isFile(v) {
		t.Values["password"] = v
		note("the relay password is written in the table: keep the file mode 0600, or move it to a password-file")
		return
	}
	path := file(v)
	b, err := os.ReadFile(path)
	if err != nil {
		note("credential file %s: %v; set password-file", path, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
	first := strings.TrimRight(lines[0], "\r")
	user := fields["username"]
	switch {
	case user != "" && len(lines) > 1:
		t.Values["password-file"] = path // escalefs reads user:password lines too
	case user != "" && strings.HasPrefix(first, user+":"):
		t.Password = strings.TrimPrefix(first, user+":")
	case user != "":
		t.Values["password-file"] = path
	default:
		u, pw, ok := strings.Cut(first, ":")
		if !ok {
			note("credential file %s holds no \"user:password\" line, and no user is set: Escale asked for "+
				"the login then; set username and password-file", path)
			return
		}
		fields["username"] = u
		t.Password = pw
	}
}

// escaleUnits are Escale's storage units, in MiB (its "MB"), as its
// storage_space_unit table has them: upper-case B for bytes, lower-case b
// for bits, and French octets (Ko, Mo, Go…).
var escaleUnits = map[string]float64{
	"Kb": 1.0 / 8192, "KB": 1.0 / 1024, "Mb": 1.0 / 8, "MB": 1, "Gb": 128, "GB": 1024, "Tb": 128 << 10, "TB": 1 << 20,
	"Pb": 128 << 20, "PB": 1 << 30, "Eb": 128 << 30, "EB": 1 << 40,
	"MiB": 1, "GiB": 1024, "TiB": 1 << 20, "PiB": 1 << 30, "EiB": 1 << 40,
}

func init() {
	for _, u := range "KMGTPE" {
		escaleUnits[string(u)] = escaleUnits[string(u)+"B"]
		escaleUnits[string(u)+"o"] = escaleUnits[string(u)+"B"]
	}
}

var escaleNumber = regexp.MustCompile(`^([0-9]+(?:[.,][0-9]+)?)\s*([a-zA-Z]*)$`)

// escaleQuota reads an Escale disk quota (a number with a unit, in MB
// without one) as a size escalefs reads: whole MiB, or bytes.
func escaleQuota(v string) (string, error) {
	m := escaleNumber.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return "", fmt.Errorf("expected a number with a unit such as 2GB")
	}
	n, err := strconv.ParseFloat(strings.Replace(m[1], ",", ".", 1), 64)
	if err != nil {
		return "", err
	}
	unit := m[2]
	if unit == "" {
		unit = "MB"
	}
	f, ok := escaleUnits[unit]
	if !ok {
		return "", fmt.Errorf("unit %q is not one of Escale's (units are case-sensitive: KB, MB, GB… bytes; Kb, Mb, Gb… bits)", unit)
	}
	mib := n * f
	if mib == float64(int64(mib)) {
		return strconv.FormatInt(int64(mib), 10) + "MiB", nil
	}
	return strconv.FormatInt(int64(mib*(1<<20)), 10), nil
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
