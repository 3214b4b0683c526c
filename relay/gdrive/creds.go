package gdrive

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/drive/v3"
)

var osGetenv = os.Getenv

// credentialFormats is the help text of every credentials error.
const credentialFormats = `expected one of these JSON files:
  - a service-account key ({"type": "service_account", "client_email": ..., "private_key": ..., ...}, as the Google Cloud console downloads it);
  - an authorized-user file ({"type": "authorized_user", "client_id": ..., "client_secret": ..., "refresh_token": ...}, as "gcloud auth application-default login" writes it);
  - an OAuth token file ({"client_id": ..., "client_secret": ..., "token": {"access_token": ..., "refresh_token": ..., "expiry": ...}}; "token" may also be that object as a JSON string, the form of rclone's "token" setting)`

// credentialsFile is the union of the fields of the accepted formats.
type credentialsFile struct {
	Type         string          `json:"type"`
	ClientID     string          `json:"client_id"`
	ClientSecret string          `json:"client_secret"`
	RefreshToken string          `json:"refresh_token"`
	TokenURI     string          `json:"token_uri"`
	Token        json.RawMessage `json:"token"`
	// Fields that identify files of other kinds, for better errors.
	AccessToken string          `json:"access_token"`
	Installed   json.RawMessage `json:"installed"`
	Web         json.RawMessage `json:"web"`
}

// LoadCredentials reads a credentials file and returns a token source for
// the Drive scope. Three formats are accepted:
//
//   - A service-account key, {"type": "service_account", ...}, as the Google
//     Cloud console downloads it. The relay folder must be shared with the
//     account's client_email (or be in a shared drive it is a member of).
//   - An authorized-user file, {"type": "authorized_user", "client_id",
//     "client_secret", "refresh_token"}, as "gcloud auth
//     application-default login" writes it.
//   - An OAuth token file: {"client_id", "client_secret", "token"}, where
//     token is an oauth2.Token ({"access_token", "token_type",
//     "refresh_token", "expiry"}) either as an object or as a JSON string,
//     as rclone keeps it in its "token" setting. An rclone user copies
//     client_id, client_secret and token from the drive remote of
//     rclone.conf (which must have a client ID of its own: rclone's built-in
//     one is not published).
//
// The authorized-user and token formats may carry "token_uri" to use
// another token endpoint. Refreshed access tokens are kept in memory only.
// ctx is kept for token refreshes (oauth2.HTTPClient in it selects their
// HTTP client), so it must outlive the token source. Errors name the file
// and list the formats.
func LoadCredentials(ctx context.Context, file string) (oauth2.TokenSource, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gdrive credentials file %s: %s; %s", file, fmt.Sprintf(format, args...), credentialFormats)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the gdrive credentials file: %w; %s", err, credentialFormats)
	}
	var cf credentialsFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, bad("not valid JSON (%v)", err)
	}
	switch {
	case cf.Type == "service_account":
		jc, err := google.JWTConfigFromJSON(b, drive.DriveScope)
		if err != nil {
			return nil, bad("unusable service-account key: %v", err)
		}
		if jc.Email == "" || len(jc.PrivateKey) == 0 {
			return nil, bad("the service-account key lacks client_email or private_key")
		}
		// Parse the key now, so that a broken one is reported here and not
		// at the first request.
		if err := checkPrivateKey(jc.PrivateKey); err != nil {
			return nil, bad("unusable private_key: %v", err)
		}
		return jc.TokenSource(ctx), nil
	case cf.Type == "authorized_user":
		if cf.ClientID == "" || cf.ClientSecret == "" || cf.RefreshToken == "" {
			return nil, bad("an authorized_user file needs client_id, client_secret and refresh_token")
		}
		return oauthConfig(cf).TokenSource(ctx, &oauth2.Token{RefreshToken: cf.RefreshToken}), nil
	case cf.Type != "":
		return nil, bad("credentials of type %q are not supported", cf.Type)
	case len(cf.Installed) > 0 || len(cf.Web) > 0:
		return nil, bad("this is an OAuth client secret file, which holds no token; authorize the client first and write its client_id, client_secret and token into a token file")
	case len(cf.Token) > 0:
		tok, err := parseToken(cf.Token)
		if err != nil {
			return nil, bad("%v", err)
		}
		if tok.RefreshToken == "" && tok.AccessToken == "" {
			return nil, bad("the token has neither refresh_token nor access_token")
		}
		if tok.RefreshToken != "" && (cf.ClientID == "" || cf.ClientSecret == "") {
			return nil, bad("refreshing the token needs client_id and client_secret next to it")
		}
		if tok.RefreshToken == "" {
			// Usable until it expires; then requests fail with ErrAuth.
			return oauth2.StaticTokenSource(tok), nil
		}
		return oauthConfig(cf).TokenSource(ctx, tok), nil
	case cf.AccessToken != "" || cf.RefreshToken != "":
		return nil, bad("this is a bare OAuth token; refreshing it needs the OAuth client, so write {\"client_id\": ..., \"client_secret\": ..., \"token\": <this token>}")
	}
	return nil, bad("no \"type\" or \"token\" field: not a known credentials format")
}

func oauthConfig(cf credentialsFile) *oauth2.Config {
	ep := google.Endpoint
	ep.AuthStyle = oauth2.AuthStyleInParams
	if cf.TokenURI != "" {
		ep.TokenURL = cf.TokenURI
	}
	return &oauth2.Config{ClientID: cf.ClientID, ClientSecret: cf.ClientSecret, Endpoint: ep, Scopes: []string{drive.DriveScope}}
}

// parseToken reads an oauth2.Token given as an object or as a JSON string.
func parseToken(raw json.RawMessage) (*oauth2.Token, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	var tok oauth2.Token
	if err := json.Unmarshal(raw, &tok); err != nil {
		return nil, fmt.Errorf("\"token\" is not an OAuth token object: %v", err)
	}
	return &tok, nil
}

// checkPrivateKey checks that a PEM private key parses, as the JWT flow
// will parse it.
func checkPrivateKey(pemKey []byte) error {
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return errors.New("no PEM block")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		if _, err1 := x509.ParsePKCS1PrivateKey(block.Bytes); err1 != nil {
			return err
		}
	}
	return nil
}

// namedSource labels the errors of a token source with the credentials
// file, so that a refused refresh says which file holds the bad token.
type namedSource struct {
	file string
	ts   oauth2.TokenSource
}

func (n namedSource) Token() (*oauth2.Token, error) {
	t, err := n.ts.Token()
	if err != nil {
		return nil, &tokenError{file: n.file, err: err}
	}
	return t, nil
}

// tokenError is a token source's failure, with its credentials file.
type tokenError struct {
	file string
	err  error
}

func (e *tokenError) Error() string { return "credentials file " + e.file + ": " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }
