package testserver

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"text/template"
)

// DAVServer is a WebDAV server started by StartApache or StartNginx.
type DAVServer struct {
	// Kind is "apache" or "nginx".
	Kind string
	// URL is the base URL of the shared collection, without a trailing
	// slash and without credentials, e.g. http://127.0.0.1:8080/dav.
	URL string
	// Root is the directory on disk that URL serves.
	Root string
	// User and Password are the credentials the server accepts.
	User, Password string
	// Cert is the server's self-signed certificate when it speaks HTTPS.
	Cert *Cert
	// Process is the running server.
	Process *Process
	// Dir holds the configuration, logs and all other state.
	Dir string
}

// DAVOptions select the variant of a WebDAV server.
type DAVOptions struct {
	// TLS serves HTTPS with a fresh self-signed certificate (Cert).
	TLS bool
	// Digest asks for HTTP Digest authentication instead of Basic
	// (Apache only).
	Digest bool
}

// Subdir returns the URL and the on-disk path of a fresh collection name
// under the server's root. The collection does not exist yet; opening a
// relay on the URL creates it. Each test uses its own, so tests sharing one
// server see only their own files.
func (s *DAVServer) Subdir(t testing.TB) (url, dir string) {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "t-" + hex.EncodeToString(b[:])
	return s.URL + "/" + name, filepath.Join(s.Root, name)
}

// ErrorLog returns the server's error log, for failure messages.
func (s *DAVServer) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
	return string(b)
}

// davState prepares the state directory shared by both servers: a root
// owned by www-data (the servers' workers drop privileges to it), an
// htpasswd file and, with TLS, a certificate.
func davState(t testing.TB, kind string, opts DAVOptions) (*DAVServer, int) {
	t.Helper()
	dir := TempDir(t)
	s := &DAVServer{Kind: kind, Root: filepath.Join(dir, "root"), User: User, Password: Password, Dir: dir}
	for _, d := range []string{s.Root, filepath.Join(dir, "run"), filepath.Join(dir, "lock"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// {SHA} hashes are understood by both Apache and nginx and cost nothing
	// to check, which matters because Basic auth checks every request.
	sum := sha1.Sum([]byte(s.Password))
	htpasswd := fmt.Sprintf("%s:{SHA}%s\n", s.User, base64.StdEncoding.EncodeToString(sum[:]))
	// Digest realm "dav": user:realm:MD5(user:realm:password).
	ha1 := md5.Sum([]byte(s.User + ":dav:" + s.Password))
	htdigest := fmt.Sprintf("%s:dav:%s\n", s.User, hex.EncodeToString(ha1[:]))
	for f, c := range map[string]string{"htpasswd": htpasswd, "htdigest": htdigest} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if opts.TLS {
		c := NewCert(t, dir)
		s.Cert = &c
	}
	if os.Geteuid() == 0 {
		for _, d := range []string{"root", "lock", "tmp"} {
			Chown(t, filepath.Join(dir, d), "www-data:www-data")
		}
	}
	port := FreePort(t)
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	s.URL = scheme + "://127.0.0.1:" + strconv.Itoa(port) + "/dav"
	return s, port
}

type davConfig struct {
	Dir, Root string
	Port      int
	Root0     bool // running as root: drop privileges to www-data
	TLS       bool
	Digest    bool
	Cert      *Cert
}

func writeConfig(t testing.TB, file, text string, data davConfig) {
	t.Helper()
	var buf bytes.Buffer
	if err := template.Must(template.New(filepath.Base(file)).Parse(text)).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

const apacheConf = `ServerRoot {{.Dir}}
ServerName localhost
Listen 127.0.0.1:{{.Port}}
PidFile {{.Dir}}/run/httpd.pid
DefaultRuntimeDir {{.Dir}}/run
ErrorLog {{.Dir}}/error.log
LogLevel warn
{{if .Root0}}User www-data
Group www-data
{{end}}LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
{{if .Digest}}LoadModule auth_digest_module /usr/lib/apache2/modules/mod_auth_digest.so
{{end}}LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dav_module /usr/lib/apache2/modules/mod_dav.so
LoadModule dav_fs_module /usr/lib/apache2/modules/mod_dav_fs.so
{{if .TLS}}LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
SSLEngine on
SSLCertificateFile {{.Cert.CertFile}}
SSLCertificateKeyFile {{.Cert.KeyFile}}
SSLSessionCache shmcb:{{.Dir}}/run/ssl_scache(512000)
{{end}}TypesConfig /etc/mime.types
DavLockDB {{.Dir}}/lock/davlock
DocumentRoot {{.Root}}
Alias /dav {{.Root}}
<Directory {{.Root}}>
  Dav On
  Options None
  AllowOverride None
{{if .Digest}}  AuthType Digest
  AuthName "dav"
  AuthDigestProvider file
  AuthUserFile {{.Dir}}/htdigest
{{else}}  AuthType Basic
  AuthName "dav"
  AuthUserFile {{.Dir}}/htpasswd
{{end}}  Require valid-user
</Directory>
`

// StartApache starts Apache httpd with mod_dav_fs on 127.0.0.1, serving a
// fresh directory at /dav with Basic (or Digest) authentication. It stops
// when the test ends.
func StartApache(t testing.TB, opts DAVOptions) *DAVServer {
	t.Helper()
	bin := LookBinary(t, "apache2")
	for _, m := range []string{"mod_dav.so", "mod_dav_fs.so", "mod_ssl.so"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/apache2/modules", m)); err != nil {
			Unavailable(t, "Apache module %s is not installed", m)
		}
	}
	s, port := davState(t, "apache", opts)
	conf := filepath.Join(s.Dir, "httpd.conf")
	writeConfig(t, conf, apacheConf, davConfig{
		Dir: s.Dir, Root: s.Root, Port: port, Root0: os.Geteuid() == 0,
		TLS: opts.TLS, Digest: opts.Digest, Cert: s.Cert,
	})
	s.Process = Start(t, port, bin, "-f", conf, "-DFOREGROUND")
	return s
}

const nginxConf = `load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
daemon off;
{{if .Root0}}user www-data;
{{end}}worker_processes 1;
pid {{.Dir}}/run/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path {{.Dir}}/tmp;
  proxy_temp_path {{.Dir}}/tmp;
  fastcgi_temp_path {{.Dir}}/tmp;
  uwsgi_temp_path {{.Dir}}/tmp;
  scgi_temp_path {{.Dir}}/tmp;
  server {
    listen 127.0.0.1:{{.Port}}{{if .TLS}} ssl{{end}};
{{if .TLS}}    ssl_certificate {{.Cert.CertFile}};
    ssl_certificate_key {{.Cert.KeyFile}};
{{end}}    location /dav/ {
      alias {{.Root}}/;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      dav_access user:rw group:rw all:r;
      create_full_put_path on;
      client_max_body_size 0;
      auth_basic "dav";
      auth_basic_user_file {{.Dir}}/htpasswd;
    }
  }
}
`

// StartNginx starts nginx with its dav and dav_ext modules on 127.0.0.1,
// serving a fresh directory at /dav with Basic authentication. Request
// bodies are staged in a directory outside Root, so Root holds only what
// the relay stored. It stops when the test ends.
func StartNginx(t testing.TB, opts DAVOptions) *DAVServer {
	t.Helper()
	bin := LookBinary(t, "nginx")
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"); err != nil {
		Unavailable(t, "the nginx dav_ext module is not installed (libnginx-mod-http-dav-ext)")
	}
	if opts.Digest {
		t.Fatal("testserver: nginx has no Digest authentication")
	}
	s, port := davState(t, "nginx", opts)
	conf := filepath.Join(s.Dir, "nginx.conf")
	writeConfig(t, conf, nginxConf, davConfig{
		Dir: s.Dir, Root: s.Root, Port: port, Root0: os.Geteuid() == 0,
		TLS: opts.TLS, Cert: s.Cert,
	})
	// -e keeps nginx from opening /var/log/nginx before it reads the config.
	s.Process = Start(t, port, bin, "-e", filepath.Join(s.Dir, "error.log"), "-p", s.Dir, "-c", conf)
	return s
}
