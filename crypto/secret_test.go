package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var keyFileTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestKeyFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "repo.key")
	s := GenerateKey()
	if err := WriteKeyFile(path, s, keyFileTime); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte("created 2025-01-02T03:04:05Z")) || !bytes.Contains(data, []byte("\nescalefs-key-1:")) {
		t.Errorf("key file text:\n%s", data)
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind() != SecretKey || !bytes.Equal(got.material(), s.material()) {
		t.Fatal("the key read back differs from the key written")
	}

	// The key read back opens the repository the original created.
	c, k, err := NewConfig(bytes.NewReader(make([]byte, 16)), s, EncryptionAge, KDFParams{})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := c.Unlock(got)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, k, k2)

	// An existing file is never overwritten.
	other := GenerateKey()
	err = WriteKeyFile(path, other, keyFileTime)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("writing over an existing key file: %v", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("WriteKeyFile changed an existing file")
	}

	// Only keys go into key files.
	for _, bad := range []Secret{Passphrase("pw"), NoSecret(), {}} {
		p := filepath.Join(t.TempDir(), "k")
		if err := WriteKeyFile(p, bad, keyFileTime); err == nil || !strings.Contains(err.Error(), "only a key secret") {
			t.Errorf("writing a %q secret to a key file: %v", bad.Kind(), err)
		}
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused key file was created: %v", err)
		}
	}
	if err := WriteKeyFile(filepath.Join(t.TempDir(), "no", "such", "dir"), s, keyFileTime); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestKeyGenerate(t *testing.T) {
	a, b := GenerateKey(), GenerateKey()
	if a.Kind() != SecretKey || len(a.material()) != KeySize || bytes.Equal(a.material(), b.material()) {
		t.Fatal("GenerateKey does not return distinct 32-byte keys")
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := Key(make([]byte, n)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("got %d", n)) {
			t.Errorf("Key(%d bytes): %v", n, err)
		}
	}
	raw := bytes.Repeat([]byte{7}, KeySize)
	k, err := Key(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw[0] = 8
	if k.material()[0] != 7 {
		t.Error("Key keeps the caller's slice")
	}
}

// TestSecretFileModes: a secret file readable by group or others is
// refused, naming the file, its mode and the fix.
func TestSecretFileModes(t *testing.T) {
	dir := t.TempDir()
	keyText, err := MarshalKeyFile(GenerateKey(), keyFileTime)
	if err != nil {
		t.Fatal(err)
	}
	readers := []struct {
		name string
		text []byte
		read func(string) (Secret, error)
	}{
		{"key file", keyText, ReadKeyFile},
		{"passphrase file", []byte("pw\n"), ReadPassphraseFile},
	}
	for _, r := range readers {
		for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o606, 0o777, 0o610} {
			t.Run(fmt.Sprintf("%s/%04o", r.name, mode), func(t *testing.T) {
				path := filepath.Join(dir, fmt.Sprintf("%s-%04o", strings.ReplaceAll(r.name, " ", "-"), mode))
				if err := os.WriteFile(path, r.text, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, mode); err != nil {
					t.Fatal(err)
				}
				s, err := r.read(path)
				if s.Kind() != "" {
					t.Error("a secret returned with the error")
				}
				wantErr(t, err, errs(ErrInsecureFile), r.name, path, fmt.Sprintf("mode %04o", mode), "chmod 600 "+path)
			})
		}
		for _, mode := range []fs.FileMode{0o600, 0o400} {
			path := filepath.Join(dir, fmt.Sprintf("ok-%04o", mode))
			os.Remove(path)
			if err := os.WriteFile(path, r.text, mode); err != nil {
				t.Fatal(err)
			}
			if _, err := r.read(path); err != nil {
				t.Errorf("%s with mode %04o: %v", r.name, mode, err)
			}
		}
		_, err := r.read(filepath.Join(dir, "missing"))
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), r.name) {
			t.Errorf("%s missing: %v", r.name, err)
		}
	}
}

func TestParseKeyFile(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, KeySize) // encodes with - and _ in base64url
	b64 := base64.RawURLEncoding.EncodeToString(key)
	if !strings.ContainsAny(b64, "-_") {
		t.Fatal("test bug: key has no base64url-only character")
	}
	good := []string{
		"escalefs-key-1:" + b64,
		"escalefs-key-1:" + b64 + "\n",
		"# comment\n\n   \nescalefs-key-1:" + b64 + "\n# trailing comment\n",
		"\r\n# comment\r\nescalefs-key-1:" + b64 + "\r\n",
		"  escalefs-key-1:" + b64 + "  \n",
	}
	for _, text := range good {
		s, err := ParseKeyFile([]byte(text))
		if err != nil {
			t.Errorf("ParseKeyFile(%q): %v", text, err)
			continue
		}
		if s.Kind() != SecretKey || !bytes.Equal(s.material(), key) {
			t.Errorf("ParseKeyFile(%q) gave another key", text)
		}
	}
	generated, err := MarshalKeyFile(newSecret(SecretKey, key), keyFileTime)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ParseKeyFile(generated); err != nil || !bytes.Equal(s.material(), key) {
		t.Fatalf("ParseKeyFile(MarshalKeyFile(k)): %v", err)
	}

	std := base64.StdEncoding.EncodeToString(key)
	for _, tc := range []struct{ name, text, words string }{
		{"empty", "", "expected one line"},
		{"comments only", "# escalefs repository key\n# nothing else\n", "expected one line"},
		{"two keys", "escalefs-key-1:" + b64 + "\nescalefs-key-1:" + b64 + "\n", "expected one line"},
		{"stray line", "escalefs-key-1:" + b64 + "\nhello\n", "expected one line"},
		{"other prefix", "escalefs-key-2:" + b64, "expected one line"},
		{"no prefix", b64, "expected one line"},
		{"age identity", "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSPV9P3", "expected one line"},
		{"padded", "escalefs-key-1:" + b64 + "=", "must be 32 bytes in unpadded base64url"},
		{"standard base64", "escalefs-key-1:" + std, "must be 32 bytes"},
		{"short key", "escalefs-key-1:" + b64[:40], "must be 32 bytes"},
		{"long key", "escalefs-key-1:" + b64 + "AAAA", "must be 32 bytes"},
		{"hex", "escalefs-key-1:" + hex.EncodeToString(key), "must be 32 bytes"},
		// 43 characters carry 258 bits: the last two must be zero, or two
		// spellings would hold one key.
		{"non-canonical last character", "escalefs-key-1:" + strings.Repeat("0", 42) + "1", "must be 32 bytes"},
		{"CR inside", "escalefs-key-1:" + b64[:20] + "\r" + b64[20:], "must be 32 bytes"},
		{"space inside", "escalefs-key-1:" + b64[:20] + " " + b64[20:], "must be 32 bytes"},
		{"empty key", "escalefs-key-1:", "must be 32 bytes"},
		{"binary", "\x00\xff\xfe", "expected one line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseKeyFile([]byte(tc.text))
			if s.Kind() != "" {
				t.Error("a secret returned with the error")
			}
			wantErr(t, err, errs(err), "not an escalefs key file", tc.words)
			if strings.Contains(err.Error(), b64[5:20]) {
				t.Errorf("the error %q shows the key", err)
			}
		})
	}

	// Malformed key files are reported with their name.
	path := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(path, []byte("escalefs-key-1:short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "key file "+path) {
		t.Errorf("ReadKeyFile of a malformed file: %v", err)
	}
}

func TestPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct {
		text, want string // want "" means refused
	}{
		{"hunter2\n", "hunter2"},
		{"hunter2", "hunter2"},
		{"hunter2\r\n", "hunter2"},
		{"hunter2\nsecond line\n", "hunter2"},
		{" spaces kept \n", " spaces kept "},
		{"pässwörd\n", "pässwörd"},
		{"", ""},
		{"\n", ""},
		{"\r\n", ""},
		{"\nhunter2\n", ""},
	} {
		path := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := ReadPassphraseFile(path)
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), path) {
				t.Errorf("passphrase file %q: %v", tc.text, err)
			}
			continue
		}
		if err != nil || s.Kind() != SecretPassphrase || string(s.material()) != tc.want {
			t.Errorf("passphrase file %q: %q, %v", tc.text, s.material(), err)
		}
	}
}

func TestReadPassphrase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hunter2\n", "hunter2"},
		{"hunter2", "hunter2"},
		{"hunter2\r\n", "hunter2"},
		{"hunter2\nrest", "hunter2"},
		{"", ""},
		{"\n", ""},
		{"\r\n", ""},
	} {
		s, err := ReadPassphrase(strings.NewReader(tc.in))
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "passphrase is empty") {
				t.Errorf("ReadPassphrase(%q): %v", tc.in, err)
			}
			continue
		}
		if err != nil || string(s.material()) != tc.want || s.Kind() != SecretPassphrase {
			t.Errorf("ReadPassphrase(%q) = %q, %v", tc.in, s.material(), err)
		}
	}
	if _, err := ReadPassphrase(errReader{}); err == nil || !strings.Contains(err.Error(), "reading passphrase") {
		t.Errorf("ReadPassphrase of a failing reader: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("broken terminal") }

// TestNoKeyMaterialPrinted: no fmt verb or slog handler shows a
// passphrase, a key (raw, hex or base64), a subkey or the age identity,
// whether the value is printed directly, through a pointer or inside a
// struct.
func TestNoKeyMaterialPrinted(t *testing.T) {
	const pass = "Tr0ub4dor&3-passphrase"
	passSecret := Passphrase(pass)
	keySecret := GenerateKey()
	_, passKeys, err := NewConfig(bytes.NewReader(make([]byte, 48)), passSecret, EncryptionAge, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	_, keyKeys, err := NewConfig(bytes.NewReader(make([]byte, 48)), keySecret, EncryptionOff, KDFParams{})
	if err != nil {
		t.Fatal(err)
	}

	// Everything that must not appear, in every encoding.
	var forbidden []string
	addBytes := func(b []byte) {
		forbidden = append(forbidden,
			string(b), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
			base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
			fmt.Sprint(b[:8])[1:20], // decimal bytes, as %v of a []byte prints them
			fmt.Sprintf("%x", b[:8]), fmt.Sprintf("% x", b[:8]), fmt.Sprintf("%#v", b[:4])[8:],
		)
	}
	addBytes([]byte(pass))
	addBytes(keySecret.material())
	for _, k := range []*Keys{passKeys, keyKeys} {
		addBytes(k.records[:])
		addBytes(k.names[:])
		forbidden = append(forbidden, k.AgeIdentity(), strings.ToLower(k.AgeIdentity()), k.AgeIdentity()[15:40])
	}

	type exported struct {
		S Secret
		K *Keys
	}
	type unexported struct {
		s Secret
		k *Keys
		p *Secret
	}
	values := []any{
		passSecret, &passSecret, keySecret, &keySecret, passKeys, keyKeys,
		exported{passSecret, passKeys}, &exported{keySecret, keyKeys},
		unexported{passSecret, passKeys, &keySecret}, &unexported{keySecret, keyKeys, &passSecret},
		[]Secret{passSecret, keySecret}, map[string]*Keys{"k": passKeys},
		[]any{passSecret, keyKeys},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%d", "%o", "%b", "%c", "%U", "%e", "%t", "%p", "%T", "%10.3v", "%-x"}

	// A Secret or *Keys printed directly shows its redacted form and
	// nothing else, whatever the verb.
	for _, verb := range verbs {
		if verb == "%T" || verb == "%p" {
			continue
		}
		for _, c := range []struct {
			v    any
			want string
		}{
			{passSecret, "[passphrase secret redacted]"}, {keySecret, "[key secret redacted]"},
			{NoSecret(), "[none secret redacted]"}, {passKeys, "[repository keys redacted]"},
			{keyKeys, "[repository keys redacted]"},
		} {
			if got := fmt.Sprintf(verb, c.v); got != c.want {
				t.Errorf("Sprintf(%q, %s) = %q", verb, c.want, got)
			}
		}
	}

	var out strings.Builder
	for _, v := range values {
		for _, verb := range verbs {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		fmt.Fprintln(&out, v)
		fmt.Fprint(&out, v, "\n")
	}
	for _, h := range []slog.Handler{
		slog.NewTextHandler(&out, nil),
		slog.NewJSONHandler(&out, nil),
	} {
		l := slog.New(h)
		for i, v := range values {
			l.Info("opening", "value", v, slog.Any("any", v), slog.Group("g", "v", v), fmt.Sprint(i), v)
		}
		l.Info("secret", "s", passSecret, "k", passKeys, "ks", keySecret, "kk", keyKeys)
	}
	text := out.String()
	for _, f := range forbidden {
		if len(f) >= 6 && strings.Contains(text, f) {
			i := strings.Index(text, f)
			t.Errorf("key material %q printed, in:\n%s", f, text[max(0, i-200):min(len(text), i+len(f)+50)])
		}
	}
	// The redacted forms are what is printed.
	for _, want := range []string{"[passphrase secret redacted]", "[key secret redacted]", "[repository keys redacted]"} {
		if !strings.Contains(text, want) {
			t.Errorf("output never shows %q", want)
		}
	}
	if testing.Verbose() {
		t.Logf("%d bytes of output checked, e.g. %q", len(text), text[:min(len(text), 300)])
	}

	// The error messages of Unlock do not show the secret either.
	c, _, _ := NewConfig(bytes.NewReader(make([]byte, 48)), passSecret, EncryptionAge, cheapKDF)
	for _, s := range []Secret{Passphrase(pass + "x"), keySecret, NoSecret()} {
		if _, err := c.Unlock(s); err == nil || strings.Contains(err.Error(), pass) {
			t.Errorf("Unlock error: %v", err)
		}
	}
}
