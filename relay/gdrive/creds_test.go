package gdrive_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/gdrive"
	"github.com/escalefs/escalefs/relay/gdrive/drivetest"
	"github.com/escalefs/escalefs/relay/relaytest"
)

// authConfig reaches the fake with credentials (NoAuth off).
func authConfig(srv *drivetest.Server) gdrive.Config {
	c := testConfig(srv)
	c.NoAuth = false
	return c
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openWith(srv *drivetest.Server, opts relay.Options) (*gdrive.Relay, error) {
	u, _ := url.Parse("gdrive:///escalefs/relay")
	return gdrive.OpenWithConfig(context.Background(), u, opts, authConfig(srv))
}

// roundTrip checks that a relay opened with credentials works, and that
// the fake saw tokens from its token endpoint.
func roundTrip(t *testing.T, srv *drivetest.Server, r *gdrive.Relay) {
	t.Helper()
	t.Cleanup(func() { r.Close() })
	relaytest.MustPut(t, r, "auth/x", []byte("authorized"))
	if got := relaytest.MustGet(t, r, "auth/x"); string(got) != "authorized" {
		t.Errorf("got %q", got)
	}
	if st := srv.Stats(); st.Requests["token"] < 1 || srv.IssuedTokens() < 1 {
		t.Errorf("no token was fetched: %v", st.Requests)
	}
}

func TestServiceAccount(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	srv.RequireAuth()
	key := writeFile(t, "sa.json", srv.ServiceAccountKey())
	r, err := openWith(srv, relay.Options{CredentialsFile: key})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, srv, r)

	// The server revokes the token: requests fail as an auth error.
	srv.RevokeAccessTokens()
	_, err = r.Stat(context.Background(), "auth/x")
	if !errors.Is(err, relay.ErrAuth) || !relay.IsPermanent(err) {
		t.Errorf("stat with a revoked token: %v, want a permanent relay.ErrAuth", err)
	}
}

func TestServiceAccountFromEnvironment(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	srv.RequireAuth()
	key := writeFile(t, "sa.json", srv.ServiceAccountKey())
	getenv := func(k string) string {
		if k == "GOOGLE_APPLICATION_CREDENTIALS" {
			return key
		}
		return ""
	}
	r, err := openWith(srv, relay.Options{Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, srv, r)
}

func TestUnknownServiceAccount(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	srv.RequireAuth()
	// A well-formed key the token endpoint does not know.
	var sa map[string]string
	if err := json.Unmarshal(srv.ServiceAccountKey(), &sa); err != nil {
		t.Fatal(err)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	sa["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	key := writeFile(t, "sa.json", mustJSON(t, sa))
	_, err = openWith(srv, relay.Options{CredentialsFile: key})
	if !errors.Is(err, relay.ErrAuth) || !relay.IsPermanent(err) {
		t.Errorf("open with a key the server does not know: %v, want a permanent relay.ErrAuth", err)
	}
}

func TestAuthorizedUser(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	srv.RequireAuth()
	id, secret, refresh := srv.OAuthClient()
	file := writeFile(t, "adc.json", mustJSON(t, map[string]string{
		"type": "authorized_user", "client_id": id, "client_secret": secret,
		"refresh_token": refresh, "token_uri": srv.TokenURL(),
	}))
	r, err := openWith(srv, relay.Options{CredentialsFile: file})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, srv, r)
}

func TestTokenFile(t *testing.T) {
	for _, asString := range []bool{false, true} {
		t.Run(map[bool]string{false: "object", true: "rclone-string"}[asString], func(t *testing.T) {
			srv := drivetest.New()
			t.Cleanup(srv.Close)
			srv.RequireAuth()
			id, secret, refresh := srv.OAuthClient()
			// An expired access token with its refresh token, as a token
			// file holds it an hour after it was written.
			tok := map[string]any{
				"access_token": "ya29.expired", "token_type": "Bearer", "refresh_token": refresh,
				"expiry": time.Now().Add(-time.Hour).Format(time.RFC3339),
			}
			var tokField any = tok
			if asString {
				tokField = string(mustJSON(t, tok))
			}
			file := writeFile(t, "token.json", mustJSON(t, map[string]any{
				"client_id": id, "client_secret": secret, "token": tokField, "token_uri": srv.TokenURL(),
			}))
			r, err := openWith(srv, relay.Options{CredentialsFile: file})
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, srv, r)
		})
	}
}

func TestRevokedRefreshToken(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	srv.RequireAuth()
	id, secret, _ := srv.OAuthClient()
	file := writeFile(t, "token.json", mustJSON(t, map[string]any{
		"client_id": id, "client_secret": secret, "token_uri": srv.TokenURL(),
		"token": map[string]string{"refresh_token": "1//not-issued"},
	}))
	_, err := openWith(srv, relay.Options{CredentialsFile: file})
	if !errors.Is(err, relay.ErrAuth) || !relay.IsPermanent(err) {
		t.Errorf("open with a refresh token the server refuses: %v, want a permanent relay.ErrAuth", err)
	}
	if err != nil && !strings.Contains(err.Error(), file) {
		t.Errorf("%v does not name the credentials file", err)
	}
}

func TestNoCredentials(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	srv.RequireAuth()
	none := func(string) string { return "" }
	_, err := openWith(srv, relay.Options{Getenv: none})
	if !errors.Is(err, relay.ErrAuth) || !strings.Contains(err.Error(), "credentials file") {
		t.Errorf("open without credentials: %v", err)
	}
	if n := srv.Stats().Requests["files.get"]; n != 0 {
		t.Errorf("open without credentials made %d requests", n)
	}
	// A server that wants credentials answers 401 to a client without.
	u, _ := url.Parse("gdrive:///escalefs/relay")
	_, err = gdrive.OpenWithConfig(context.Background(), u, relay.Options{}, testConfig(srv))
	if !errors.Is(err, relay.ErrAuth) {
		t.Errorf("open of an authenticating server without credentials: %v, want relay.ErrAuth", err)
	}
}

func TestCredentialFileErrors(t *testing.T) {
	srv := drivetest.New()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var sa map[string]string
	if err := json.Unmarshal(srv.ServiceAccountKey(), &sa); err != nil {
		t.Fatal(err)
	}
	sa["private_key"] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
	for _, tc := range []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "absent.json"), "no such file"},
		{"not JSON", write("garbage.json", "client_id = x\n"), "not valid JSON"},
		{"empty object", write("empty.json", "{}"), "not a known credentials format"},
		{"client secret", write("client_secret.json", `{"installed": {"client_id": "x", "client_secret": "y"}}`), "client secret file"},
		{"bare token", write("token_v2.json", `{"access_token": "a", "refresh_token": "r", "token_type": "Bearer"}`), "bare OAuth token"},
		{"token without client", write("tok.json", `{"token": {"refresh_token": "r"}}`), "needs client_id and client_secret"},
		{"empty token", write("tok2.json", `{"client_id": "x", "client_secret": "y", "token": {}}`), "neither refresh_token nor access_token"},
		{"token not an object", write("tok3.json", `{"client_id": "x", "client_secret": "y", "token": 5}`), "not an OAuth token object"},
		{"incomplete authorized_user", write("adc.json", `{"type": "authorized_user", "client_id": "x"}`), "needs client_id, client_secret and refresh_token"},
		{"other type", write("ext.json", `{"type": "external_account"}`), `"external_account" are not supported`},
		{"broken private key", write("sa.json", string(mustJSON(t, sa))), "unusable private_key"},
	} {
		_, err := openWith(srv, relay.Options{CredentialsFile: tc.file})
		switch {
		case err == nil:
			t.Errorf("%s: open succeeded", tc.name)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v\nwant it to say %q", tc.name, err, tc.want)
		case !strings.Contains(err.Error(), tc.file):
			t.Errorf("%s: %v\ndoes not name the file", tc.name, err)
		case !strings.Contains(err.Error(), "service-account key") || !strings.Contains(err.Error(), "token file"):
			t.Errorf("%s: %v\ndoes not list the expected formats", tc.name, err)
		case !relay.IsPermanent(err):
			t.Errorf("%s: %v is not permanent", tc.name, err)
		}
		if tc.name == "missing" && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing file: %v does not wrap fs.ErrNotExist", err)
		}
	}
	if n := srv.Stats().Requests["files.get"]; n != 0 {
		t.Errorf("bad credential files led to %d requests", n)
	}
}
