package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// newAuthCmd is "escalefs auth": obtaining credentials for a relay.
func newAuthCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Obtain credentials for a relay",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAuthGdriveCmd(g))
	return cmd
}

// Test hooks. authHTTPClient, when set, carries every OAuth request;
// authOpenBrowser is called with the authorization URL of the loopback flow
// once it has been printed.
var (
	authHTTPClient  *http.Client
	authOpenBrowser = openBrowser
)

// Google's OAuth scopes for Drive. The backend works on folders it did not
// create (a folder shared by another account, one made in the web
// interface, or by another OAuth client), which only the full drive scope
// reaches; drive.file sees only the files this Cloud project's clients
// created, and is the only Drive scope Google allows in the device flow.
const (
	scopeDrive     = "https://www.googleapis.com/auth/drive"
	scopeDriveFile = "https://www.googleapis.com/auth/drive.file"
)

// authGdriveOptions are the flags of "escalefs auth gdrive".
type authGdriveOptions struct {
	clientFile       string
	clientID         string
	clientSecretFile string
	device           bool
	output           string
	force            bool
	scope            string
	port             int
	noBrowser        bool
	// Hidden: the endpoints, for tests and other OAuth servers.
	authURL, tokenURL, deviceURL string
}

func newAuthGdriveCmd(g *globals) *cobra.Command {
	var o authGdriveOptions
	cmd := &cobra.Command{
		Use:   "gdrive (--client FILE | --client-id ID --client-secret-file FILE) [--device] [-o FILE]",
		Short: "Authorize escalefs to use a Google Drive account; write the token file (mode 0600)",
		Long: `gdrive obtains an OAuth token for Google Drive and writes it, with mode 0600,
in the form --credentials FILE reads.

The OAuth client is yours: create one in the Google Cloud console (APIs &
Services > Credentials > Create credentials > OAuth client ID), of type
"Desktop app" for the default flow or "TVs and Limited Input devices" for
--device, and give its downloaded JSON with --client FILE, or its ID with
--client-id and a file holding its secret with --client-secret-file.

By default escalefs listens on 127.0.0.1, prints the address to open in a
browser (and opens it when a display is available), and receives the
authorization there when you accept. Through SSH, forward the port:
"--port 8085" here and "ssh -L 8085:127.0.0.1:8085 host" on the machine with
the browser.

--device is for machines without a browser: escalefs prints an address and
a code to enter on any other device, and waits. Google allows only the
drive.file scope in this flow: the token then reaches only the files that
escalefs, with a client of the same Cloud project, created. The default
flow asks for the drive scope, which reaches every folder of the account,
including folders shared with it.

Without -o the token goes to $XDG_CONFIG_HOME/escalefs/gdrive-token.json (by
default ~/.config/escalefs/gdrive-token.json). An existing file is replaced
only with --force.`,
		Example: `  escalefs auth gdrive --client ~/Downloads/client_secret_1234.apps.googleusercontent.com.json
  escalefs auth gdrive --client-id 1234.apps.googleusercontent.com --client-secret-file ~/.gdrive-secret --device
  escalefs relay check --credentials ~/.config/escalefs/gdrive-token.json gdrive:///escalefs/relay`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuthGdrive(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.clientFile, "client", "", "OAuth client JSON `FILE` downloaded from the Google Cloud console")
	f.StringVar(&o.clientID, "client-id", "", "OAuth client `ID` (instead of --client)")
	f.StringVar(&o.clientSecretFile, "client-secret-file", "", "`FILE` whose first line is the OAuth client secret (with --client-id)")
	f.BoolVar(&o.device, "device", false, "use the device flow: enter a code on another device (for machines without a browser)")
	f.StringVarP(&o.output, "output", "o", "", "token `FILE` to write (default $XDG_CONFIG_HOME/escalefs/gdrive-token.json)")
	f.BoolVar(&o.force, "force", false, "replace the token file if it exists")
	f.StringVar(&o.scope, "scope", "", "OAuth scope: drive or drive.file (default drive, and drive.file with --device)")
	f.IntVar(&o.port, "port", 0, "loopback port to receive the authorization on (default: any free port)")
	f.BoolVar(&o.noBrowser, "no-browser", false, "only print the authorization address; do not start a browser")
	f.StringVar(&o.authURL, "auth-url", google.Endpoint.AuthURL, "OAuth authorization endpoint")
	f.StringVar(&o.tokenURL, "token-url", google.Endpoint.TokenURL, "OAuth token endpoint")
	f.StringVar(&o.deviceURL, "device-url", google.Endpoint.DeviceAuthURL, "OAuth device authorization endpoint")
	for _, n := range []string{"auth-url", "token-url", "device-url"} {
		_ = f.MarkHidden(n)
	}
	cmd.MarkFlagsMutuallyExclusive("client", "client-id")
	cmd.MarkFlagsMutuallyExclusive("client", "client-secret-file")
	cmd.MarkFlagsMutuallyExclusive("device", "port")
	return cmd
}

// defaultGdriveTokenPath is where auth gdrive writes without -o.
func defaultGdriveTokenPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no default place for the token file (%v); give one with -o FILE", err)
	}
	return filepath.Join(dir, "escalefs", "gdrive-token.json"), nil
}

func runAuthGdrive(ctx context.Context, g *globals, o authGdriveOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	id, secret, err := o.client()
	if err != nil {
		return err
	}
	scope, err := o.scopeURL()
	if err != nil {
		return err
	}
	out := o.output
	if out == "" {
		if out, err = defaultGdriveTokenPath(); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
			return fmt.Errorf("creating the token file's directory: %w", err)
		}
	}
	// Refuse before asking anything of the user.
	if !o.force {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("%s already exists; give --force to replace it, or -o another file", out)
		}
	}
	conf := &oauth2.Config{
		ClientID:     id,
		ClientSecret: secret,
		Scopes:       []string{scope},
		Endpoint: oauth2.Endpoint{
			AuthURL:       o.authURL,
			TokenURL:      o.tokenURL,
			DeviceAuthURL: o.deviceURL,
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
	hc := authHTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)

	var tok *oauth2.Token
	if o.device {
		tok, err = deviceFlow(ctx, g, conf)
	} else {
		tok, err = loopbackFlow(ctx, g, conf, o)
	}
	if err != nil {
		return err
	}
	if tok.RefreshToken == "" {
		return errors.New("the token endpoint returned no refresh token, so the access token would stop working within an hour; " +
			"revoke escalefs's access at https://myaccount.google.com/permissions and run the command again")
	}
	tf := gdriveTokenFile{
		ClientID:     id,
		ClientSecret: secret,
		Token: gdriveToken{
			AccessToken:  tok.AccessToken,
			TokenType:    tok.TokenType,
			RefreshToken: tok.RefreshToken,
			Expiry:       tok.Expiry,
		},
		Scope: scope,
	}
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		tf.Scope = s
	}
	if o.tokenURL != google.Endpoint.TokenURL {
		tf.TokenURI = o.tokenURL
	}
	data, err := json.MarshalIndent(tf, "", "  ")
	if err != nil {
		return err
	}
	if err := writeSecretFile(out, append(data, '\n'), o.force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; give --force to replace it, or -o another file", out)
		}
		return fmt.Errorf("writing the token file: %w", err)
	}
	fmt.Fprintf(g.stdout, "Wrote the Google Drive token to %s (mode 0600). Give it to escalefs with:\n  --credentials %s\n", out, out)
	if tf.Scope == scopeDriveFile {
		fmt.Fprintln(g.stdout, "This token has the drive.file scope: it reaches only the folders and files escalefs creates with this Cloud project's clients.")
	}
	return nil
}

// gdriveTokenFile is the token file of the gdrive backend (see
// gdrive.LoadCredentials); scope is informative.
type gdriveTokenFile struct {
	ClientID     string      `json:"client_id"`
	ClientSecret string      `json:"client_secret"`
	Token        gdriveToken `json:"token"`
	TokenURI     string      `json:"token_uri,omitempty"`
	Scope        string      `json:"scope,omitempty"`
}

type gdriveToken struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// client returns the OAuth client's ID and secret from the flags.
func (o authGdriveOptions) client() (id, secret string, err error) {
	switch {
	case o.clientFile != "":
		return readOAuthClientFile(o.clientFile)
	case o.clientID != "":
		if o.clientSecretFile == "" {
			return "", "", errors.New("--client-id needs --client-secret-file FILE with the client's secret")
		}
		secret, err := readFirstLine(o.clientSecretFile)
		if err != nil {
			return "", "", fmt.Errorf("reading the client secret: %w", err)
		}
		if secret == "" {
			return "", "", fmt.Errorf("client secret file %s is empty", o.clientSecretFile)
		}
		return o.clientID, secret, nil
	case o.clientSecretFile != "":
		return "", "", errors.New("--client-secret-file needs --client-id")
	}
	return "", "", errors.New("no OAuth client: give --client FILE (the JSON downloaded from the Google Cloud console) " +
		"or --client-id ID --client-secret-file FILE; see escalefs auth gdrive --help")
}

// readOAuthClientFile reads the client JSON the Google Cloud console
// downloads: {"installed": {"client_id": ..., "client_secret": ...}}.
func readOAuthClientFile(file string) (id, secret string, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", fmt.Errorf("reading the OAuth client file: %w", err)
	}
	type client struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	var cf struct {
		Installed *client `json:"installed"`
		Web       *client `json:"web"`
		Type      string  `json:"type"`
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return "", "", fmt.Errorf("OAuth client file %s: not valid JSON (%v)", file, err)
	}
	switch {
	case cf.Installed != nil && cf.Installed.ClientID != "" && cf.Installed.ClientSecret != "":
		return cf.Installed.ClientID, cf.Installed.ClientSecret, nil
	case cf.Installed != nil:
		return "", "", fmt.Errorf("OAuth client file %s lacks client_id or client_secret", file)
	case cf.Web != nil:
		return "", "", fmt.Errorf("OAuth client file %s is a \"Web application\" client; create one of type \"Desktop app\" "+
			"(or \"TVs and Limited Input devices\" for --device)", file)
	case cf.Type == "service_account" || cf.Type == "authorized_user":
		return "", "", fmt.Errorf("%s holds %s credentials, which need no authorization: give it to escalefs with --credentials", file, cf.Type)
	}
	return "", "", fmt.Errorf("OAuth client file %s: no \"installed\" section; expected the JSON of an OAuth client ID "+
		"as the Google Cloud console downloads it ({\"installed\": {\"client_id\": ..., \"client_secret\": ...}})", file)
}

func readFirstLine(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func (o authGdriveOptions) scopeURL() (string, error) {
	switch o.scope {
	case "":
		if o.device {
			return scopeDriveFile, nil
		}
		return scopeDrive, nil
	case "drive", scopeDrive:
		return scopeDrive, nil
	case "drive.file", scopeDriveFile:
		return scopeDriveFile, nil
	}
	return "", fmt.Errorf("--scope %q: expected drive or drive.file", o.scope)
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// callback is what the loopback listener received.
type callback struct {
	code string
	err  error
}

// loopbackFlow is the authorization code flow with PKCE, receiving the code
// on a listener on 127.0.0.1 (RFC 8252).
func loopbackFlow(ctx context.Context, g *globals, conf *oauth2.Config, o authGdriveOptions) (*oauth2.Token, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)))
	if err != nil {
		return nil, fmt.Errorf("listening on 127.0.0.1 for the authorization: %w", err)
	}
	c := *conf
	c.RedirectURL = "http://" + ln.Addr().String() + "/"
	state := randomToken(32)
	verifier := oauth2.GenerateVerifier()

	done := make(chan callback, 1)
	var once sync.Once
	finish := func(cb callback) { once.Do(func() { done <- cb }) }
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			q := r.URL.Query()
			cb := checkCallback(q.Get("state"), state, q.Get("code"), q.Get("error"), q.Get("error_description"))
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if cb.err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "<!doctype html><title>escalefs</title><p>escalefs: %s</p><p>You may close this window.</p>\n", html.EscapeString(cb.err.Error()))
			} else {
				fmt.Fprint(w, "<!doctype html><title>escalefs</title><p>escalefs received the authorization; the terminal tells how it ends.</p><p>You may close this window.</p>\n")
			}
			finish(cb)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	authURL := c.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.ApprovalForce, oauth2.S256ChallengeOption(verifier))
	fmt.Fprintf(g.stderr, "Open this address in a browser and allow escalefs to use your Google Drive:\n\n  %s\n\nWaiting for the authorization on %s …\n", authURL, c.RedirectURL)
	if !o.noBrowser {
		authOpenBrowser(authURL)
	}

	var cb callback
	select {
	case cb = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("stopped while waiting for the authorization: %w", ctx.Err())
	}
	if cb.err != nil {
		return nil, cb.err
	}
	tok, err := c.Exchange(ctx, cb.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchanging the authorization code for a token: %w", describeOAuthError(err))
	}
	return tok, nil
}

// checkCallback checks the query of the redirect to the loopback listener.
func checkCallback(gotState, wantState, code, errCode, errDesc string) callback {
	if subtle.ConstantTimeCompare([]byte(gotState), []byte(wantState)) != 1 {
		return callback{err: errors.New("refused an authorization whose state does not match the one escalefs sent " +
			"(a stale browser tab, or a forged request); run escalefs auth gdrive again")}
	}
	switch {
	case errCode == "access_denied":
		return callback{err: errors.New("authorization denied: access was not granted in the browser; run escalefs auth gdrive again and allow access")}
	case errCode != "":
		msg := "authorization failed: " + errCode
		if errDesc != "" {
			msg += ": " + errDesc
		}
		return callback{err: errors.New(msg)}
	case code == "":
		return callback{err: errors.New("the authorization redirect carried no code")}
	}
	return callback{code: code}
}

// openBrowser starts a browser on url when a display is available, and
// never fails: the address has been printed anyway.
func openBrowser(url string) {
	var name string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		return
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return
		}
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return
	}
	cmd := exec.Command(path, url)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if cmd.Start() == nil {
		go func() { _ = cmd.Wait() }()
	}
}

// deviceFlow is the device authorization grant (RFC 8628): the user enters
// a code on another device while escalefs polls the token endpoint.
func deviceFlow(ctx context.Context, g *globals, conf *oauth2.Config) (*oauth2.Token, error) {
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("requesting a device code: %w", describeOAuthError(err))
	}
	if da.VerificationURI == "" || da.UserCode == "" || da.DeviceCode == "" {
		return nil, errors.New("requesting a device code: the answer lacks verification_url, user_code or device_code")
	}
	fmt.Fprintf(g.stderr, "On any device with a browser, open\n\n  %s\n\nand enter the code\n\n  %s\n\n", da.VerificationURI, da.UserCode)
	if !da.Expiry.IsZero() {
		fmt.Fprintf(g.stderr, "The code is valid until %s. Waiting for the authorization …\n", da.Expiry.Local().Format("15:04:05"))
	}
	// DeviceAccessToken waits interval seconds between polls, adds 5 s on
	// slow_down, keeps polling on authorization_pending, and stops at the
	// code's expiry.
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err == nil {
		return tok, nil
	}
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.ErrorCode == "access_denied":
		return nil, errors.New("authorization denied: access was not granted on the verification page; run escalefs auth gdrive --device again and allow access")
	case errors.As(err, &re) && re.ErrorCode == "expired_token",
		errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil, errors.New("the code expired before it was entered; run escalefs auth gdrive --device again for a new code")
	case ctx.Err() != nil:
		return nil, fmt.Errorf("stopped while waiting for the authorization: %w", ctx.Err())
	}
	return nil, fmt.Errorf("waiting for the authorization: %w", describeOAuthError(err))
}

// describeOAuthError adds advice to the OAuth errors a misconfigured
// client gets.
func describeOAuthError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	desc := re.ErrorCode
	if re.ErrorDescription != "" {
		desc += ": " + re.ErrorDescription
	}
	if desc == "" {
		desc = strings.TrimSpace(string(re.Body))
		if re.Response != nil {
			desc = re.Response.Status + " " + desc
		}
	}
	switch re.ErrorCode {
	case "invalid_client", "unauthorized_client":
		return fmt.Errorf("%s (check the client ID and secret; for --device the client must be of type \"TVs and Limited Input devices\")", desc)
	case "invalid_scope":
		return fmt.Errorf("%s (Google's device flow allows only --scope drive.file; for the drive scope use the default flow, through ssh -L if need be)", desc)
	case "invalid_grant":
		return fmt.Errorf("%s (the code was used already or has expired; run the command again)", desc)
	}
	return errors.New(desc)
}

// writeSecretFile writes data to path with mode 0600, atomically: through
// a temporary file in the same directory, renamed into place, or linked
// into place when an existing file must not be replaced.
func writeSecretFile(path string, data []byte, replace bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		return os.Rename(tmp, path)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// A filesystem without hard links.
		if _, serr := os.Lstat(path); serr == nil {
			return fs.ErrExist
		}
		return os.Rename(tmp, path)
	}
	return nil
}
