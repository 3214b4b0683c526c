package drivetest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DriveScope is the OAuth scope the fake expects in service-account JWTs.
const DriveScope = "https://www.googleapis.com/auth/drive"

// authState holds the credentials the token endpoint knows and the access
// tokens it has issued.
type authState struct {
	required bool
	lifetime time.Duration
	tokens   map[string]time.Time      // access token → expiry
	clients  map[string]string         // OAuth client ID → secret
	refresh  map[string]string         // refresh token → client ID
	accounts map[string]*rsa.PublicKey // service-account email → key
}

func (a *authState) init() {
	a.lifetime = time.Hour
	a.tokens = map[string]time.Time{}
	a.clients = map[string]string{}
	a.refresh = map[string]string{}
	a.accounts = map[string]*rsa.PublicKey{}
}

// RequireAuth makes every API request need a Bearer access token issued by
// the token endpoint; requests without a valid one get 401.
func (s *Server) RequireAuth() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.required = true
}

// SetTokenLifetime sets the expires_in of access tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.lifetime = d
}

// RevokeAccessTokens invalidates every access token issued so far, so that
// requests carrying one get 401 (refresh tokens stay valid).
func (s *Server) RevokeAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.tokens = map[string]time.Time{}
}

// IssuedTokens is the number of access tokens issued and not revoked.
func (s *Server) IssuedTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.auth.tokens)
}

// ServiceAccountKey creates a service account with a fresh RSA key and
// returns its JSON key file, in the form the Google Cloud console
// downloads, with token_uri pointing at this server.
func (s *Server) ServiceAccountKey() []byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	id := randomID(12)
	email := "relay-" + id + "@escalefs-test.iam.gserviceaccount.com"
	s.mu.Lock()
	s.auth.accounts[email] = &key.PublicKey
	s.mu.Unlock()
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  "escalefs-test",
		"private_key_id":              randomID(40),
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                email,
		"client_id":                   "1" + randomID(20),
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   s.TokenURL(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// OAuthClient registers an OAuth client with one refresh token, as if a
// user had authorized it, and returns them.
func (s *Server) OAuthClient() (clientID, clientSecret, refreshToken string) {
	clientID = randomID(12) + ".apps.googleusercontent.com"
	clientSecret = "GOCSPX-" + randomID(28)
	refreshToken = "1//" + randomID(40)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.clients[clientID] = clientSecret
	s.auth.refresh[refreshToken] = clientID
	return clientID, clientSecret, refreshToken
}

// checkAuth verifies the Bearer token of an API request.
func (s *Server) checkAuth(r *http.Request) (apiError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.auth.required {
		return apiError{}, true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return apiError{Code: 401, Reason: "required", Message: "Request is missing required authentication credential. Expected OAuth 2 access token."}, false
	}
	exp, ok := s.auth.tokens[tok]
	if !ok || time.Now().After(exp) {
		return apiError{Code: 401, Reason: "authError", Message: "Invalid Credentials"}, false
	}
	return apiError{}, true
}

func tokenError(w http.ResponseWriter, code int, kind, desc string) {
	writeJSON(w, code, map[string]string{"error": kind, "error_description": desc})
}

// serveToken is the OAuth 2.0 token endpoint: the refresh_token grant and
// the JWT bearer grant of service accounts.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		tokenError(w, 405, "invalid_request", "POST only")
		return
	}
	if err := r.ParseForm(); err != nil {
		tokenError(w, 400, "invalid_request", err.Error())
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "refresh_token":
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		s.mu.Lock()
		want, known := s.auth.clients[id]
		owner := s.auth.refresh[r.PostForm.Get("refresh_token")]
		s.mu.Unlock()
		if !known || want != secret {
			tokenError(w, 401, "invalid_client", "The OAuth client was not found.")
			return
		}
		if owner != id {
			tokenError(w, 400, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		s.issueToken(w, "")
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		scope, err := s.verifyJWT(r.PostForm.Get("assertion"))
		if err != nil {
			tokenError(w, 400, "invalid_grant", err.Error())
			return
		}
		s.issueToken(w, scope)
	default:
		tokenError(w, 400, "unsupported_grant_type", fmt.Sprintf("Invalid grant_type: %s", gt))
	}
}

func (s *Server) issueToken(w http.ResponseWriter, scope string) {
	tok := "ya29." + randomID(48)
	s.mu.Lock()
	life := s.auth.lifetime
	s.auth.tokens[tok] = time.Now().Add(life)
	s.mu.Unlock()
	body := map[string]any{"access_token": tok, "expires_in": int(life / time.Second), "token_type": "Bearer"}
	if scope != "" {
		body["scope"] = scope
	}
	writeJSON(w, 200, body)
}

// verifyJWT checks a service account's signed assertion: RS256 by a known
// account's key, addressed to this token endpoint, unexpired, asking for
// the Drive scope. It returns the scope.
func (s *Server) verifyJWT(assertion string) (string, error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("assertion is not a JWT")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Exp   int64  `json:"exp"`
		Iat   int64  `json:"iat"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return "", fmt.Errorf("JWT header: %v", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return "", fmt.Errorf("JWT claims: %v", err)
	}
	if hdr.Alg != "RS256" {
		return "", fmt.Errorf("JWT algorithm %q, want RS256", hdr.Alg)
	}
	s.mu.Lock()
	pub, ok := s.auth.accounts[claims.Iss]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("invalid JWT signature: unknown account %q", claims.Iss)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", fmt.Errorf("JWT signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return "", fmt.Errorf("invalid JWT signature")
	}
	if claims.Aud != s.TokenURL() {
		return "", fmt.Errorf("invalid JWT: audience %q is not this token endpoint", claims.Aud)
	}
	now := time.Now().Unix()
	if claims.Exp < now || claims.Iat > now+300 {
		return "", fmt.Errorf("invalid JWT: Token must be a short-lived token and in a reasonable timeframe")
	}
	hasDrive := false
	for _, sc := range strings.Fields(claims.Scope) {
		if sc == DriveScope {
			hasDrive = true
		}
	}
	if !hasDrive {
		return "", fmt.Errorf("invalid JWT: scope %q lacks %s", claims.Scope, DriveScope)
	}
	return claims.Scope, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
