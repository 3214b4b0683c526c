package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/testserver"
)

// testKDF keeps Argon2id cheap in tests; it is the least ParseConfig accepts.
var testKDF = crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

const testPassphrase = "correct horse battery staple"

// newTestRepo creates a file:// relay whose escale.json is protected by
// secret, and returns its URL and the repository's keys.
func newTestRepo(t *testing.T, secret crypto.Secret, enc crypto.Encryption) (string, *crypto.Keys) {
	t.Helper()
	dir := t.TempDir()
	cfg, keys, err := crypto.NewConfig(rand.Reader, secret, enc, testKDF)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, crypto.ConfigName), cfg.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir, keys
}

// writeFile writes a file with the given mode (regardless of the umask).
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func passphraseFile(t *testing.T, passphrase string) string {
	return writeFile(t, filepath.Join(t.TempDir(), "passphrase"), []byte(passphrase+"\n"), 0o600)
}

// keyFile writes a new key file and returns its path and secret.
func keyFile(t *testing.T) (string, crypto.Secret) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	s := crypto.GenerateKey()
	if err := crypto.WriteKeyFile(path, s, time.Now()); err != nil {
		t.Fatal(err)
	}
	return path, s
}

func TestKeyGenerate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "repo.key")
	out, errOut, code := run(t, "key", "generate", "-o", path)
	if code != 0 {
		t.Fatalf("key generate: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{path, "chmod 600", "scp", "never put it on the relay", "--key-file " + path} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not mention %q:\n%s", want, out)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if _, err := crypto.ReadKeyFile(path); err != nil {
		t.Fatalf("crypto.ReadKeyFile rejects the generated file: %v", err)
	}
	before, _ := os.ReadFile(path)
	for line := range strings.Lines(string(before)) {
		if key, ok := strings.CutPrefix(strings.TrimSpace(line), "escalefs-key-1:"); ok && strings.Contains(out, key) {
			t.Errorf("the key itself is printed:\n%s", out)
		}
	}

	// A second run must not overwrite it.
	out, errOut, code = run(t, "key", "generate", "-o", path)
	if code != 1 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "never overwrites") {
		t.Errorf("key generate over an existing file: exit %d\n%s%s", code, out, errOut)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("key generate changed an existing key file")
	}

	// Two keys differ.
	other := filepath.Join(t.TempDir(), "other.key")
	if _, _, code := run(t, "key", "generate", "-o", other); code != 0 {
		t.Fatal("second key generate failed")
	}
	if after, _ := os.ReadFile(other); bytes.Equal(before, after) {
		t.Error("two generated key files are identical")
	}

	// A directory that does not exist is not created for -o.
	missing := filepath.Join(t.TempDir(), "no", "such", "key")
	if _, errOut, code := run(t, "key", "generate", "-o", missing); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("key generate into a missing directory: exit %d, %s", code, errOut)
	}
}

func TestKeyGenerateDefaultPath(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	out, errOut, code := run(t, "key", "generate")
	if code != 0 {
		t.Fatalf("key generate: exit %d\n%s%s", code, out, errOut)
	}
	path := filepath.Join(cfg, "escalefs", "key")
	if !strings.Contains(out, path) {
		t.Errorf("the output does not name %s:\n%s", path, out)
	}
	if _, err := crypto.ReadKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v, mode %04o, want 0700", err, st.Mode().Perm())
	}
	if _, errOut, code := run(t, "key", "generate"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("second key generate: exit %d, %s", code, errOut)
	}
}

func TestKeyAgeIdentity(t *testing.T) {
	kf, ks := keyFile(t)
	for _, tc := range []struct {
		name   string
		secret crypto.Secret
		flags  []string
	}{
		{"passphrase", crypto.Passphrase(testPassphrase), []string{"--passphrase-file", passphraseFile(t, testPassphrase)}},
		{"key file", ks, []string{"--key-file", kf}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, keys := newTestRepo(t, tc.secret, crypto.EncryptionAge)
			args := append([]string{"key", "age-identity", "--relay", u}, tc.flags...)
			out, errOut, code := run(t, args...)
			if code != 0 {
				t.Fatalf("age-identity: exit %d\n%s%s", code, out, errOut)
			}
			if want := keys.AgeIdentity() + "\n"; out != want || !strings.HasPrefix(out, "AGE-SECRET-KEY-1") {
				t.Errorf("stdout %q, want the identity %q", out, want)
			}
			if !strings.HasPrefix(errOut, "# ") || !strings.Contains(errOut, "age -d -i FILE BLOB > out") ||
				!strings.Contains(errOut, keys.Repository().String()) {
				t.Errorf("stderr lacks the comment on how to use the identity: %q", errOut)
			}
			out, errOut, code = run(t, append(args, "--recipient")...)
			if code != 0 {
				t.Fatalf("age-identity --recipient: exit %d\n%s%s", code, out, errOut)
			}
			if want := keys.AgeRecipient() + "\n"; out != want || !strings.HasPrefix(out, "age1") {
				t.Errorf("--recipient: stdout %q, want %q", out, want)
			}
			if strings.Contains(out+errOut, "AGE-SECRET-KEY") {
				t.Errorf("--recipient shows the identity:\n%s%s", out, errOut)
			}
		})
	}
}

// ageIdentityExit is the exit status of each case of
// TestKeyAgeIdentityErrors (docs/commands.md: "Exit codes").
var ageIdentityExit = map[string]int{
	"wrong passphrase":                     exitSecret,
	"wrong key file":                       exitSecret,
	"key file for a passphrase repository": exitSecret,
	"passphrase for a key repository":      exitSecret,
	"missing escale.json":                  exitFailure,
	"corrupt escale.json":                  exitFailure,
	"encryption off":                       exitFailure,
	"both secrets":                         exitUsage,
	"no secret":                            exitUsage,
	"no relay":                             exitUsage,
	"insecure passphrase file":             exitUsage,
	"missing passphrase file":              exitUsage,
	"unknown scheme":                       exitUsage,
}

func TestKeyAgeIdentityErrors(t *testing.T) {
	passURL, _ := newTestRepo(t, crypto.Passphrase(testPassphrase), crypto.EncryptionAge)
	kf, ks := keyFile(t)
	keyURL, _ := newTestRepo(t, ks, crypto.EncryptionAge)
	otherKey, _ := keyFile(t)
	good := passphraseFile(t, testPassphrase)
	wrong := passphraseFile(t, "incorrect horse")
	loose := writeFile(t, filepath.Join(t.TempDir(), "loose"), []byte(testPassphrase+"\n"), 0o644)
	empty := t.TempDir()
	emptyURL := "file://" + empty
	corrupt := t.TempDir()
	writeFile(t, filepath.Join(corrupt, crypto.ConfigName), []byte(`{"format": "escalefs", "version": 1`), 0o600)
	offURL, _ := newTestRepo(t, crypto.NoSecret(), crypto.EncryptionOff)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"wrong passphrase", []string{"--relay", passURL, "--passphrase-file", wrong},
			[]string{"wrong passphrase or key", "wrong passphrase for repository"}},
		{"wrong key file", []string{"--relay", keyURL, "--key-file", otherKey},
			[]string{"wrong passphrase or key", "is not the key of repository"}},
		{"key file for a passphrase repository", []string{"--relay", passURL, "--key-file", kf},
			[]string{"protected by a passphrase, but a key file was given"}},
		{"passphrase for a key repository", []string{"--relay", keyURL, "--passphrase-file", good},
			[]string{"protected by a key file, but a passphrase was given"}},
		{"missing escale.json", []string{"--relay", emptyURL, "--passphrase-file", good},
			[]string{"no escalefs repository at file://" + empty + " (escale.json not found)"}},
		{"corrupt escale.json", []string{"--relay", "file://" + corrupt, "--passphrase-file", good},
			[]string{"escale.json is corrupt", "truncated"}},
		{"encryption off", []string{"--relay", offURL, "--passphrase-file", good},
			[]string{"encryption off", "need no age identity"}},
		{"both secrets", []string{"--relay", passURL, "--passphrase-file", good, "--key-file", kf},
			[]string{"both --passphrase-file and --key-file given", "exactly one of"}},
		{"no secret", []string{"--relay", passURL},
			[]string{"no secret given", "exactly one of --passphrase-file FILE and --key-file FILE is required"}},
		{"no relay", []string{"--passphrase-file", good},
			[]string{`required flag(s) "relay" not set`}},
		{"insecure passphrase file", []string{"--relay", passURL, "--passphrase-file", loose},
			[]string{crypto.ErrInsecureFile.Error(), "mode 0644", "chmod 600 " + loose}},
		{"missing passphrase file", []string{"--relay", passURL, "--passphrase-file", loose + ".nosuch"},
			[]string{"reading passphrase file", "no such file"}},
		{"unknown scheme", []string{"--relay", "nosuch://host/x", "--passphrase-file", good},
			[]string{`unknown scheme "nosuch"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, append([]string{"key", "age-identity"}, tc.args...)...)
			if want := ageIdentityExit[tc.name]; code != want {
				t.Errorf("exit %d, want %d\n%s%s", code, want, out, errOut)
			}
			if out != "" {
				t.Errorf("something was printed on stdout: %q", out)
			}
			for _, want := range tc.want {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr %q does not contain %q", errOut, want)
				}
			}
			if strings.Contains(errOut, testPassphrase) {
				t.Errorf("the passphrase is shown: %q", errOut)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(empty, crypto.ConfigName)); err == nil {
		t.Error("age-identity created escale.json")
	}
}

// stockTool returns the path of a tool of the age distribution, preferring
// Debian's /usr/bin; a missing tool skips the test, or fails it in CI.
func stockTool(t *testing.T, name string) string {
	t.Helper()
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	testserver.Unavailable(t, "the stock %s tool is not installed", name)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// The recovery promise: with only the relay, the passphrase and the stock
// age tool, a blob written by escalefs can be decrypted.
func TestKeyAgeIdentityRecovery(t *testing.T) {
	age := stockTool(t, "age")
	kf, ks := keyFile(t)
	for _, tc := range []struct {
		name   string
		secret crypto.Secret
		flags  []string
	}{
		{"passphrase", crypto.Passphrase(testPassphrase), []string{"--passphrase-file", passphraseFile(t, testPassphrase)}},
		{"key file", ks, []string{"--key-file", kf}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, keys := newTestRepo(t, tc.secret, crypto.EncryptionAge)
			dir := t.TempDir()

			// A blob of several age chunks (64 KiB each) and a partial one.
			plain := make([]byte, 5*64<<10+12345)
			rand.Read(plain)
			var sealed bytes.Buffer
			bw, err := crypto.NewBlobWriter(keys, crypto.NewBlobID(), &sealed)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bw.Write(plain); err != nil {
				t.Fatal(err)
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			blob := writeFile(t, filepath.Join(dir, bw.Ref().ID.String()), sealed.Bytes(), 0o600)

			out, errOut, code := run(t, append([]string{"key", "age-identity", "--relay", u}, tc.flags...)...)
			if code != 0 {
				t.Fatalf("age-identity: exit %d\n%s%s", code, out, errOut)
			}
			id := writeFile(t, filepath.Join(dir, "id.txt"), []byte(out), 0o600)

			cmd := exec.Command(age, "-d", "-i", id, blob)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s -d -i %s %s: %v\n%s", age, id, blob, err, stderr.Bytes())
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("age decrypted %d bytes that differ from the %d written", len(got), len(plain))
			}

			// A blob altered on the relay is refused by age too.
			bad := bytes.Clone(sealed.Bytes())
			bad[len(bad)-100] ^= 1
			badBlob := writeFile(t, filepath.Join(dir, "altered"), bad, 0o600)
			if out, err := exec.Command(age, "-d", "-i", id, badBlob).Output(); err == nil {
				t.Errorf("age decrypted an altered blob (%d bytes)", len(out))
			}

			// The recipient printed with --recipient is the identity's
			// public half (age-keygen -y), and what stock age encrypts for
			// it escalefs opens.
			out, _, code = run(t, append([]string{"key", "age-identity", "--relay", u, "--recipient"}, tc.flags...)...)
			if code != 0 {
				t.Fatal("age-identity --recipient failed")
			}
			recipient := strings.TrimSpace(out)
			pub, err := exec.Command(stockTool(t, "age-keygen"), "-y", id).Output()
			if err != nil {
				t.Fatalf("age-keygen -y: %v", err)
			}
			if strings.TrimSpace(string(pub)) != recipient {
				t.Errorf("age-keygen -y gives %q, age-identity --recipient %q", pub, recipient)
			}
			enc := exec.Command(age, "-e", "-r", recipient)
			enc.Stdin = bytes.NewReader(plain)
			ct, err := enc.Output()
			if err != nil {
				t.Fatalf("age -e -r %s: %v", recipient, err)
			}
			ref := crypto.BlobRef{ID: crypto.NewBlobID(), Size: int64(len(ct)), SHA256: sha256.Sum256(ct)}
			r, err := crypto.OpenBlob(keys, bytes.NewReader(ct), ref)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain) {
				t.Errorf("crypto.OpenBlob of what age encrypted: %v, %d bytes", err, len(got))
			}
		})
	}
}
