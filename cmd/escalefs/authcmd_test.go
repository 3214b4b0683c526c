package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/escalefs/escalefs/relay/gdrive"
)

// fakeOAuth is an OAuth 2.0 server with Google's endpoints: /auth (the
// consent page, which consents at once and redirects), /token (the
// authorization_code grant with PKCE, refresh_token, and the device_code
// grant) and /device (device authorization).
type fakeOAuth struct {
	t              *testing.T
	clientID       string
	clientSecret   string
	deny, badState bool // what /auth redirects with

	// Device flow: the answers to successive polls ("ok" for a token),
	// then authorization_pending; the interval and lifetime of codes.
	script    []string
	interval  int
	expiresIn int

	mu         sync.Mutex
	codes      map[string]authRequest
	refresh    map[string]bool
	issued     []string    // access tokens issued
	polls      []time.Time // device token requests
	deviceAuth time.Time
	authQuery  url.Values // the last /auth query
	devScope   string
}

type authRequest struct{ challenge, redirect, scope string }

func newFakeOAuth(t *testing.T) *fakeOAuth {
	return &fakeOAuth{
		t: t, clientID: "1234-test.apps.googleusercontent.com", clientSecret: "GOCSPX-test-secret",
		interval: 5, expiresIn: 1800,
		codes: map[string]authRequest{}, refresh: map[string]bool{},
	}
}

func (f *fakeOAuth) oauthError(w http.ResponseWriter, code int, kind string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error": %q, "error_description": "fake: %s"}`, kind, kind)
}

func (f *fakeOAuth) issue(w http.ResponseWriter, scope string, withRefresh bool) {
	f.mu.Lock()
	access := "ya29." + randomToken(24)
	f.issued = append(f.issued, access)
	body := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3599, "scope": scope}
	if withRefresh {
		rt := "1//" + randomToken(24)
		f.refresh[rt] = true
		body["refresh_token"] = rt
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func (f *fakeOAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/auth":
		q := r.URL.Query()
		f.mu.Lock()
		f.authQuery = q
		f.mu.Unlock()
		redirect, err := url.Parse(q.Get("redirect_uri"))
		if err != nil || redirect.Scheme != "http" || redirect.Hostname() != "127.0.0.1" {
			http.Error(w, "redirect_uri is not a loopback address", 400)
			return
		}
		if q.Get("client_id") != f.clientID || q.Get("response_type") != "code" ||
			q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "bad authorization request", 400)
			return
		}
		back := url.Values{"state": {q.Get("state")}}
		switch {
		case f.deny:
			back.Set("error", "access_denied")
		default:
			code := "4/" + randomToken(16)
			f.mu.Lock()
			f.codes[code] = authRequest{q.Get("code_challenge"), q.Get("redirect_uri"), q.Get("scope")}
			f.mu.Unlock()
			back.Set("code", code)
		}
		if f.badState {
			back.Set("state", "forged")
		}
		redirect.RawQuery = back.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	case "/device":
		if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") != f.clientID {
			f.oauthError(w, 401, "invalid_client")
			return
		}
		f.mu.Lock()
		f.deviceAuth = time.Now()
		f.devScope = r.PostForm.Get("scope")
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"device_code": "dev-code", "user_code": "WXYZ-QRST", "verification_url": "https://www.google.com/device", "expires_in": %d, "interval": %d}`,
			f.expiresIn, f.interval)
	case "/token":
		if err := r.ParseForm(); err != nil {
			f.oauthError(w, 400, "invalid_request")
			return
		}
		p := r.PostForm
		if p.Get("client_id") != f.clientID || p.Get("client_secret") != f.clientSecret {
			f.oauthError(w, 401, "invalid_client")
			return
		}
		switch p.Get("grant_type") {
		case "authorization_code":
			f.mu.Lock()
			ar, ok := f.codes[p.Get("code")]
			delete(f.codes, p.Get("code"))
			f.mu.Unlock()
			sum := sha256.Sum256([]byte(p.Get("code_verifier")))
			switch {
			case !ok:
				f.oauthError(w, 400, "invalid_grant")
			case p.Get("redirect_uri") != ar.redirect:
				f.oauthError(w, 400, "redirect_uri_mismatch")
			case base64.RawURLEncoding.EncodeToString(sum[:]) != ar.challenge:
				f.t.Errorf("code_verifier %q does not match the challenge", p.Get("code_verifier"))
				f.oauthError(w, 400, "invalid_grant")
			default:
				f.issue(w, ar.scope, true)
			}
		case "refresh_token":
			f.mu.Lock()
			ok := f.refresh[p.Get("refresh_token")]
			f.mu.Unlock()
			if !ok {
				f.oauthError(w, 400, "invalid_grant")
				return
			}
			f.issue(w, "", false)
		case "urn:ietf:params:oauth:grant-type:device_code":
			if p.Get("device_code") != "dev-code" {
				f.oauthError(w, 400, "invalid_grant")
				return
			}
			f.mu.Lock()
			f.polls = append(f.polls, time.Now())
			answer := "authorization_pending"
			if len(f.script) > 0 {
				answer, f.script = f.script[0], f.script[1:]
			}
			scope := f.devScope
			f.mu.Unlock()
			switch answer {
			case "ok":
				f.issue(w, scope, true)
			case "authorization_pending":
				f.oauthError(w, 428, answer)
			default:
				f.oauthError(w, 403, answer)
			}
		default:
			f.oauthError(w, 400, "unsupported_grant_type")
		}
	default:
		http.NotFound(w, r)
	}
}

// clientFile writes the OAuth client JSON of f, as the Cloud console
// downloads it.
func (f *fakeOAuth) clientFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "client_secret.json")
	b, _ := json.Marshal(map[string]any{"installed": map[string]any{
		"client_id": f.clientID, "project_id": "escalefs-test", "client_secret": f.clientSecret,
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
		"redirect_uris": []string{"http://localhost"},
	}})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// browserVisit is what the stand-in browser saw of the loopback page.
type browserVisit struct {
	status int
	body   string
}

// fakeBrowser replaces the browser with a GET of the authorization URL that
// follows the redirect to the loopback listener.
func fakeBrowser(t *testing.T) *[]browserVisit {
	t.Helper()
	var visits []browserVisit
	old := authOpenBrowser
	authOpenBrowser = func(u string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Errorf("browser: %v", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		visits = append(visits, browserVisit{resp.StatusCode, string(b)})
	}
	t.Cleanup(func() { authOpenBrowser = old })
	return &visits
}

func endpointFlags(base string) []string {
	return []string{"--auth-url", base + "/auth", "--token-url", base + "/token", "--device-url", base + "/device"}
}

func readTokenFile(t *testing.T, path string) gdriveTokenFile {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tf gdriveTokenFile
	if err := json.Unmarshal(b, &tf); err != nil {
		t.Fatalf("token file: %v\n%s", err, b)
	}
	return tf
}

func assertNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s was written (%v)", path, err)
	}
	assertNoTemp(t, filepath.Dir(path))
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestAuthGdriveLoopback(t *testing.T) {
	fake := newFakeOAuth(t)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	visits := fakeBrowser(t)

	out, errOut, code := run(t, append([]string{"auth", "gdrive", "--client", fake.clientFile(t)}, endpointFlags(srv.URL)...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	path := filepath.Join(config, "escalefs", "gdrive-token.json")
	if !strings.Contains(out, path) || !strings.Contains(errOut, srv.URL+"/auth?") {
		t.Errorf("output does not show the token file or the authorization URL:\n%s%s", out, errOut)
	}
	if len(*visits) != 1 || (*visits)[0].status != 200 {
		t.Errorf("browser visits: %+v", *visits)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("token directory: %v, %v", fi, err)
	}
	q := fake.authQuery
	if q.Get("scope") != scopeDrive || q.Get("access_type") != "offline" || q.Get("prompt") != "consent" || len(q.Get("state")) < 32 {
		t.Errorf("authorization request %v", q)
	}

	tf := readTokenFile(t, path)
	if tf.ClientID != fake.clientID || tf.ClientSecret != fake.clientSecret || tf.TokenURI != srv.URL+"/token" || tf.Scope != scopeDrive {
		t.Errorf("token file %+v", tf)
	}
	if len(fake.issued) != 1 || tf.Token.AccessToken != fake.issued[0] || !fake.refresh[tf.Token.RefreshToken] || tf.Token.Expiry.Before(time.Now()) {
		t.Errorf("token %+v, issued %v", tf.Token, fake.issued)
	}

	// The backend reads the file; once the access token has expired it
	// refreshes it at token_uri with the client in the file.
	ts, err := gdrive.LoadCredentials(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := ts.Token(); err != nil || tok.AccessToken != fake.issued[0] {
		t.Errorf("token from the backend: %v, %v", tok, err)
	}
	tf.Token.Expiry = time.Now().Add(-time.Hour)
	b, _ := json.Marshal(tf)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err = gdrive.LoadCredentials(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil || len(fake.issued) != 2 || tok.AccessToken != fake.issued[1] {
		t.Errorf("refreshed token from the backend: %v, %v (issued %v)", tok, err, fake.issued)
	}
}

func TestAuthGdriveLoopbackRefused(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		setup      func(*fakeOAuth)
	}{
		{"wrong state", "state does not match", func(f *fakeOAuth) { f.badState = true }},
		{"denied", "authorization denied", func(f *fakeOAuth) { f.deny = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeOAuth(t)
			tc.setup(fake)
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			visits := fakeBrowser(t)
			path := filepath.Join(t.TempDir(), "token.json")
			_, errOut, code := run(t, append([]string{"auth", "gdrive", "--client", fake.clientFile(t), "-o", path}, endpointFlags(srv.URL)...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want a refusal with %q: %s", code, tc.want, errOut)
			}
			if len(*visits) != 1 || (*visits)[0].status != 400 || !strings.Contains((*visits)[0].body, tc.want) {
				t.Errorf("the browser was not told: %+v", *visits)
			}
			if len(fake.issued) != 0 {
				t.Errorf("a token was issued: %v", fake.issued)
			}
			assertNoFile(t, path)
		})
	}
}

func TestAuthGdriveExistingFile(t *testing.T) {
	fake := newFakeOAuth(t)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	visits := fakeBrowser(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "token.json")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(fake.clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"auth", "gdrive", "--client-id", fake.clientID, "--client-secret-file", secret, "-o", path}, endpointFlags(srv.URL)...)

	_, errOut, code := run(t, args...)
	if code == 0 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "--force") {
		t.Errorf("exit %d, want a refusal to overwrite: %s", code, errOut)
	}
	if b, _ := os.ReadFile(path); string(b) != "old\n" {
		t.Errorf("the file was changed: %q", b)
	}
	if len(*visits) != 0 {
		t.Errorf("the browser was opened before the refusal")
	}

	out, errOut, code := run(t, append(args, "--force")...)
	if code != 0 {
		t.Fatalf("--force: exit %d: %s%s", code, out, errOut)
	}
	if tf := readTokenFile(t, path); tf.ClientID != fake.clientID || tf.Token.RefreshToken == "" {
		t.Errorf("token file %+v", tf)
	}
	assertNoTemp(t, dir)
}

func TestAuthGdriveClientErrors(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.json")
	if err := os.WriteFile(web, []byte(`{"web": {"client_id": "x", "client_secret": "y"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no OAuth client"},
		{[]string{"--client-id", "x"}, "--client-secret-file"},
		{[]string{"--client", web}, "Desktop app"},
		{[]string{"--client", filepath.Join(dir, "missing.json")}, "reading the OAuth client file"},
		{[]string{"--client-id", "x", "--client-secret-file", web, "--scope", "photos"}, "expected drive or drive.file"},
	} {
		_, errOut, code := run(t, append([]string{"auth", "gdrive", "-o", filepath.Join(dir, "token.json")}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("auth gdrive %v: exit %d, %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

// handlerTransport serves requests with a handler in memory, so that the
// device flow runs in a synctest bubble, whose fake clock makes the
// polling intervals pass at once.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	ht.h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res, nil
}

// runDevice runs auth gdrive --device against fake, with the clock of a
// synctest bubble.
func runDevice(t *testing.T, fake *fakeOAuth, path string, extra ...string) (out, errOut string, code int) {
	t.Helper()
	client := fake.clientFile(t)
	old := authHTTPClient
	t.Cleanup(func() { authHTTPClient = old })
	authHTTPClient = &http.Client{Transport: handlerTransport{fake}}
	synctest.Test(t, func(t *testing.T) {
		args := append([]string{"auth", "gdrive", "--device", "--client", client, "-o", path}, endpointFlags("http://oauth.test")...)
		out, errOut, code = run(t, append(args, extra...)...)
	})
	return out, errOut, code
}

func TestAuthGdriveDevice(t *testing.T) {
	fake := newFakeOAuth(t)
	fake.script = []string{"authorization_pending", "authorization_pending", "slow_down", "ok"}
	path := filepath.Join(t.TempDir(), "token.json")
	out, errOut, code := runDevice(t, fake, path)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "https://www.google.com/device") || !strings.Contains(errOut, "WXYZ-QRST") {
		t.Errorf("the verification URL and user code are not shown:\n%s", errOut)
	}
	if fake.devScope != scopeDriveFile {
		t.Errorf("device flow asked for scope %q, want %q", fake.devScope, scopeDriveFile)
	}
	// Polls every interval (5 s), and 5 s more after slow_down.
	var gaps []time.Duration
	last := fake.deviceAuth
	for _, p := range fake.polls {
		gaps = append(gaps, p.Sub(last))
		last = p
	}
	want := []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second, 10 * time.Second}
	if fmt.Sprint(gaps) != fmt.Sprint(want) {
		t.Errorf("polls after %v, want %v", gaps, want)
	}
	tf := readTokenFile(t, path)
	if tf.ClientID != fake.clientID || tf.Scope != scopeDriveFile || len(fake.issued) != 1 ||
		tf.Token.AccessToken != fake.issued[0] || !fake.refresh[tf.Token.RefreshToken] {
		t.Errorf("token file %+v", tf)
	}
	if !strings.Contains(out, "drive.file") {
		t.Errorf("the drive.file scope's limits are not told: %s", out)
	}
}

func TestAuthGdriveDeviceFails(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		script     []string
	}{
		{"denied", "authorization denied", []string{"authorization_pending", "access_denied"}},
		{"expired", "code expired", []string{"authorization_pending", "expired_token"}},
		// Pending until the code's expires_in has passed.
		{"timeout", "code expired", nil},
		{"scope", "only --scope drive.file", []string{"invalid_scope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeOAuth(t)
			fake.script = tc.script
			fake.expiresIn = 60
			path := filepath.Join(t.TempDir(), "token.json")
			_, errOut, code := runDevice(t, fake, path)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, %q, want %q", code, errOut, tc.want)
			}
			// At 5, 10, … 55 s, and at 60 s unless the expiry is seen first.
			if n := len(fake.polls); tc.script == nil && (n < 11 || n > 12) {
				t.Errorf("%d polls in 60 s at 5 s intervals", n)
			}
			assertNoFile(t, path)
		})
	}
}
