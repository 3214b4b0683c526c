package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// testRepo is a repository created for a test: its escale.json, secret
// and keys.
type testRepo struct {
	json   []byte
	secret Secret
	keys   *Keys
	config *Config
}

func newTestRepo(t testing.TB, secret Secret, enc Encryption) testRepo {
	t.Helper()
	c, k, err := NewConfig(rand.Reader, secret, enc, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	return testRepo{json: c.Marshal(), secret: secret, keys: k, config: c}
}

// unlock parses data and unlocks it with s.
func unlock(data []byte, s Secret) (*Keys, error) {
	c, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return c.Unlock(s)
}

// sameKeys fails t unless a and b are the keys of the same repository.
func sameKeys(t testing.TB, a, b *Keys) {
	t.Helper()
	if a == nil || b == nil {
		if a != b {
			t.Fatalf("keys %v and %v", a, b)
		}
		return
	}
	if a.Repository() != b.Repository() || a.Encryption() != b.Encryption() ||
		a.AgeIdentity() != b.AgeIdentity() || a.AgeRecipient() != b.AgeRecipient() ||
		*a.records != *b.records || a.KeyedName("n", []byte("d")) != b.KeyedName("n", []byte("d")) {
		t.Fatal("unlocking gave other keys than creating the repository")
	}
}

func TestConfigRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		secret Secret
		enc    Encryption
	}{
		{Passphrase("correct horse"), EncryptionAge},
		{Passphrase("correct horse"), EncryptionOff},
		{GenerateKey(), EncryptionAge},
		{GenerateKey(), EncryptionOff},
		{NoSecret(), EncryptionOff},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.secret.Kind(), tc.enc), func(t *testing.T) {
			r := newTestRepo(t, tc.secret, tc.enc)
			c, err := ParseConfig(r.json)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, r.config) {
				t.Fatalf("parsed %+v, wrote %+v", c, r.config)
			}
			if !bytes.Equal(c.Marshal(), r.json) {
				t.Fatal("Marshal(ParseConfig(x)) != x")
			}
			k, err := c.Unlock(tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			sameKeys(t, k, r.keys)
			if tc.secret.Kind() == SecretNone {
				if k != nil {
					t.Fatal("a repository without a secret has keys")
				}
				return
			}
			if k.Repository() != c.Repository || k.Encryption() != tc.enc {
				t.Fatalf("keys of %s/%s, want %s/%s", k.Repository(), k.Encryption(), c.Repository, tc.enc)
			}
			// The MAC covers values, not bytes: the same JSON compacted or
			// indented otherwise still unlocks.
			var compact bytes.Buffer
			if err := json.Compact(&compact, r.json); err != nil {
				t.Fatal(err)
			}
			k2, err := unlock(compact.Bytes(), tc.secret)
			if err != nil {
				t.Fatalf("compacted escale.json: %v", err)
			}
			sameKeys(t, k2, r.keys)
		})
	}
}

// TestConfigIndependentRepositories: the same passphrase protects two
// repositories with unrelated keys.
func TestConfigIndependentRepositories(t *testing.T) {
	a := newTestRepo(t, Passphrase("same"), EncryptionAge)
	b := newTestRepo(t, Passphrase("same"), EncryptionAge)
	if a.keys.AgeRecipient() == b.keys.AgeRecipient() || *a.keys.records == *b.keys.records ||
		a.keys.KeyedName("n", nil) == b.keys.KeyedName("n", nil) {
		t.Fatal("two repositories with the same passphrase share keys")
	}
}

func TestConfigWrongSecret(t *testing.T) {
	pass := newTestRepo(t, Passphrase("right"), EncryptionAge)
	key := newTestRepo(t, GenerateKey(), EncryptionAge)
	none := newTestRepo(t, NoSecret(), EncryptionOff)
	otherKey := newTestRepo(t, GenerateKey(), EncryptionAge)
	id := func(r testRepo) string { return r.config.Repository.String() }

	for _, tc := range []struct {
		name  string
		repo  testRepo
		given Secret
		words []string
	}{
		{"wrong passphrase", pass, Passphrase("wrong"), []string{"wrong passphrase for repository " + id(pass)}},
		{"passphrase with a newline", pass, Passphrase("right\n"), []string{"wrong passphrase"}},
		{"passphrase prefix", pass, Passphrase("righ"), []string{"wrong passphrase"}},
		{"key of another repository", key, otherKey.secret, []string{"not the key of repository " + id(key)}},
		{"passphrase for a key repository", key, Passphrase("right"), []string{"protected by a key file, but a passphrase was given"}},
		{"key for a passphrase repository", pass, key.secret, []string{"protected by a passphrase, but a key file was given"}},
		{"nothing for a passphrase repository", pass, NoSecret(), []string{"protected by a passphrase, but nothing (no secret) was given"}},
		{"nothing for a key repository", key, NoSecret(), []string{"protected by a key file"}},
		{"passphrase for a repository without secret", none, Passphrase("right"), []string{"protected by nothing (no secret), but a passphrase was given"}},
		{"zero Secret", pass, Secret{}, []string{"protected by a passphrase"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := unlock(tc.repo.json, tc.given)
			if k != nil {
				t.Error("keys returned with the error")
			}
			wantErr(t, err, errs(ErrWrongSecret), tc.words...)
			if strings.Contains(err.Error(), "right") {
				t.Errorf("the error %q shows a passphrase", err)
			}
		})
	}
}

// mutation alters a decoded escale.json.
type mutation func(m map[string]any)

func set(path string, v any) mutation {
	return func(m map[string]any) {
		if k, ok := strings.CutPrefix(path, "kdf."); ok {
			m["kdf"].(map[string]any)[k] = v
			return
		}
		m[path] = v
	}
}

func del(path string) mutation {
	return func(m map[string]any) {
		if k, ok := strings.CutPrefix(path, "kdf."); ok {
			delete(m["kdf"].(map[string]any), k)
			return
		}
		delete(m, path)
	}
}

// flipB64 flips a bit in the first byte of a base64 field.
func flipB64(path string) mutation {
	return func(m map[string]any) {
		obj, k := m, path
		if kk, ok := strings.CutPrefix(path, "kdf."); ok {
			obj, k = m["kdf"].(map[string]any), kk
		}
		b, err := base64.StdEncoding.DecodeString(obj[k].(string))
		if err != nil {
			panic(err)
		}
		b[0] ^= 1
		obj[k] = base64.StdEncoding.EncodeToString(b)
	}
}

func mutate(t testing.TB, data []byte, muts ...mutation) []byte {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	for _, mu := range muts {
		mu(m)
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConfigAltered changes every field of escale.json. Each change is
// refused when parsing (ErrConfigCorrupt, naming the field) or when
// unlocking: as a wrong secret when it changes the derived key (the salt,
// the KDF parameters, the repository ID, the key check), as ErrConfigCorrupt
// when only the MAC can tell.
func TestConfigAltered(t *testing.T) {
	pass := newTestRepo(t, Passphrase("pw"), EncryptionAge)
	passOff := newTestRepo(t, Passphrase("pw"), EncryptionOff)
	key := newTestRepo(t, GenerateKey(), EncryptionAge)
	none := newTestRepo(t, NoSecret(), EncryptionOff)
	otherRepo := NewRepoID().String()
	mac32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	corrupt, wrong := errs(ErrConfigCorrupt), errs(ErrWrongSecret)
	macCaught := []string{"authentication code does not match", "altered"}
	kdfAltered := []string{"wrong passphrase", "kdf salt or parameters were altered"}

	for _, tc := range []struct {
		name     string
		repo     testRepo
		muts     []mutation
		atUnlock bool // ParseConfig accepts it; Unlock refuses it
		want     []error
		words    []string
	}{
		// Passphrase repositories.
		{"encryption age to off", pass, []mutation{set("encryption", "off")}, true, corrupt, macCaught},
		{"encryption off to age", passOff, []mutation{set("encryption", "age")}, true, corrupt, macCaught},
		{"encryption unknown", pass, []mutation{set("encryption", "aes")}, false, corrupt, []string{`"encryption" is "aes"`}},
		{"kdf time", pass, []mutation{set("kdf.time", 2)}, true, wrong, kdfAltered},
		{"kdf memory", pass, []mutation{set("kdf.memory_kib", 2*minKDFMemoryKiB)}, true, wrong, kdfAltered},
		// Argon2 rounds memory down to a multiple of 4 lanes' worth, so
		// this one derives the same key: the MAC catches it.
		{"kdf memory +1", pass, []mutation{set("kdf.memory_kib", minKDFMemoryKiB+1)}, true, errs(ErrConfigCorrupt, ErrWrongSecret), []string{"altered"}},
		{"kdf threads", pass, []mutation{set("kdf.threads", 2)}, true, wrong, kdfAltered},
		{"kdf salt", pass, []mutation{flipB64("kdf.salt")}, true, wrong, kdfAltered},
		{"kdf salt short", pass, []mutation{set("kdf.salt", base64.StdEncoding.EncodeToString(make([]byte, 15)))}, false, corrupt, []string{`"kdf.salt" must be 16 to 64 bytes`}},
		{"kdf salt long", pass, []mutation{set("kdf.salt", base64.StdEncoding.EncodeToString(make([]byte, 65)))}, false, corrupt, []string{`"kdf.salt"`}},
		{"kdf salt not base64", pass, []mutation{set("kdf.salt", "!!!!")}, false, corrupt, []string{`"kdf.salt"`}},
		{"kdf algorithm", pass, []mutation{set("kdf.algorithm", "argon2i")}, false, corrupt, []string{`"kdf.algorithm" is "argon2i"`}},
		{"kdf extra field", pass, []mutation{set("kdf.pepper", "x")}, false, corrupt, []string{"not valid JSON", `unknown field "pepper"`}},
		{"kdf removed", pass, []mutation{del("kdf")}, false, corrupt, []string{`needs "kdf"`}},
		{"kdf null", pass, []mutation{set("kdf", nil)}, false, corrupt, []string{`needs "kdf"`}},
		{"kdf time removed", pass, []mutation{del("kdf.time")}, false, corrupt, []string{"kdf time 0"}},
		{"repository", pass, []mutation{set("repository", otherRepo)}, true, wrong, kdfAltered},
		{"repository not hex", pass, []mutation{set("repository", "xyz")}, false, corrupt, []string{`"repository" must be 32 hex digits`}},
		{"repository short", pass, []mutation{set("repository", otherRepo[:30])}, false, corrupt, []string{`"repository"`}},
		{"key_check", pass, []mutation{flipB64("key_check")}, true, wrong, kdfAltered},
		{"key_check removed", pass, []mutation{del("key_check")}, false, corrupt, []string{`"key_check" must be 32 bytes`}},
		{"key_check short", pass, []mutation{set("key_check", "AAAA")}, false, corrupt, []string{`"key_check"`}},
		{"mac", pass, []mutation{flipB64("mac")}, true, corrupt, macCaught},
		{"mac zero", pass, []mutation{set("mac", mac32)}, true, corrupt, macCaught},
		{"mac removed", pass, []mutation{del("mac")}, false, corrupt, []string{`"mac" must be 32 bytes`}},
		{"mac short", pass, []mutation{set("mac", "AAAA")}, false, corrupt, []string{`"mac"`}},
		{"version newer", pass, []mutation{set("version", 2)}, false, corrupt, []string{"format version 2 is newer", "upgrade escalefs"}},
		{"version zero", pass, []mutation{set("version", 0)}, false, corrupt, []string{`"version" is 0`}},
		{"version removed", pass, []mutation{del("version")}, false, corrupt, []string{`"version" is 0`}},
		{"version string", pass, []mutation{set("version", "1")}, false, corrupt, []string{"not valid JSON"}},
		{"format", pass, []mutation{set("format", "escalefs2")}, false, corrupt, []string{`"format" is "escalefs2"`}},
		{"format removed", pass, []mutation{del("format")}, false, corrupt, []string{`"format" is ""`}},
		{"secret to key", pass, []mutation{set("secret", "key")}, false, corrupt, []string{`a "key" repository has no "kdf"`}},
		{"secret to key without kdf", pass, []mutation{set("secret", "key"), del("kdf")}, true, wrong, []string{"protected by a key file, but a passphrase was given"}},
		{"secret to none", pass, []mutation{set("secret", "none")}, false, corrupt, []string{`"secret": "none" allows only`}},
		{"secret unknown", pass, []mutation{set("secret", "magic")}, false, corrupt, []string{`"secret" is "magic"`}},
		{"unknown field", pass, []mutation{set("comment", "hi")}, false, corrupt, []string{"not valid JSON", `unknown field "comment"`}},
		// The relay replaces a protected repository's escale.json by one
		// without a secret: a node holding the passphrase refuses it.
		{"downgrade to no secret", pass, []mutation{set("secret", "none"), set("encryption", "off"), del("kdf"), del("key_check"), del("mac")}, true, wrong, []string{"protected by nothing (no secret), but a passphrase was given"}},

		// Key repositories.
		{"key: repository", key, []mutation{set("repository", otherRepo)}, true, wrong, []string{"not the key of repository " + otherRepo}},
		{"key: encryption", key, []mutation{set("encryption", "off")}, true, corrupt, macCaught},
		{"key: key_check", key, []mutation{flipB64("key_check")}, true, wrong, []string{"not the key of repository"}},
		{"key: mac", key, []mutation{flipB64("mac")}, true, corrupt, macCaught},
		{"key: kdf added", key, []mutation{set("kdf", map[string]any{"algorithm": "argon2id", "salt": mac32, "time": 1, "memory_kib": minKDFMemoryKiB, "threads": 1})}, false, corrupt, []string{`a "key" repository has no "kdf"`}},
		{"key: secret to passphrase", key, []mutation{set("secret", "passphrase")}, false, corrupt, []string{`needs "kdf"`}},
		{"key: downgrade", key, []mutation{set("secret", "none"), set("encryption", "off"), del("key_check"), del("mac")}, true, wrong, []string{"protected by nothing"}},

		// Repositories without a secret.
		{"none: encryption age", none, []mutation{set("encryption", "age")}, false, corrupt, []string{`"secret": "none" allows only "encryption": "off"`}},
		{"none: key_check added", none, []mutation{set("key_check", mac32)}, false, corrupt, []string{`"secret": "none" allows only`}},
		{"none: mac added", none, []mutation{set("mac", mac32)}, false, corrupt, []string{`"secret": "none" allows only`}},
		{"none: kdf added", none, []mutation{set("kdf", map[string]any{})}, false, corrupt, []string{`"secret": "none" allows only`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := mutate(t, tc.repo.json, tc.muts...)
			c, err := ParseConfig(data)
			if !tc.atUnlock {
				if c != nil {
					t.Error("a config returned with the error")
				}
				wantErr(t, err, tc.want, tc.words...)
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			k, err := c.Unlock(tc.repo.secret)
			if k != nil {
				t.Error("keys returned with the error")
			}
			wantErr(t, err, tc.want, tc.words...)
		})
	}
}

func TestConfigMalformed(t *testing.T) {
	r := newTestRepo(t, Passphrase("pw"), EncryptionAge)
	for _, tc := range []struct {
		name  string
		data  string
		words []string
	}{
		{"empty", "", []string{"truncated"}},
		{"spaces", "  \n", []string{"truncated"}},
		{"not an object", "[]", []string{"not valid JSON"}},
		{"null", "null", []string{`"format" is ""`}},
		{"trailing object", string(r.json) + "{}", []string{"data after the JSON object"}},
		{"trailing garbage", string(r.json) + "x", []string{"data after the JSON object"}},
		{"trailing brace", string(r.json) + "}", []string{"data after the JSON object"}},
		{"trailing bracket", string(r.json) + " ]\n", []string{"data after the JSON object"}},
		{"binary", "\x00\x01\x02", []string{"not valid JSON"}},
		{"too large", string(r.json) + strings.Repeat(" ", maxConfigSize), []string{"more than the 16384"}},
		{"threads out of range", strings.Replace(string(r.json), `"threads": 1`, `"threads": 256`, 1), []string{"not valid JSON"}},
		{"negative time", strings.Replace(string(r.json), `"time": 1`, `"time": -1`, 1), []string{"not valid JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.data))
			if c != nil {
				t.Error("config returned with the error")
			}
			wantErr(t, err, errs(ErrConfigCorrupt), tc.words...)
		})
	}
}

func TestConfigTruncated(t *testing.T) {
	for _, r := range []testRepo{
		newTestRepo(t, Passphrase("pw"), EncryptionAge),
		newTestRepo(t, GenerateKey(), EncryptionOff),
		newTestRepo(t, NoSecret(), EncryptionOff),
	} {
		data := bytes.TrimRight(r.json, "\n")
		for n := range len(data) {
			c, err := ParseConfig(data[:n])
			if c != nil {
				t.Fatalf("%s config truncated to %d bytes parsed", r.config.Secret, n)
			}
			wantErr(t, err, errs(ErrConfigCorrupt))
			if msg := err.Error(); !strings.Contains(msg, "truncated") && !strings.Contains(msg, "not valid JSON") {
				t.Fatalf("truncated to %d bytes: %q says neither truncated nor not valid JSON", n, msg)
			}
		}
		// Without its final newline it is still complete.
		if _, err := unlock(data, r.secret); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConfigHostileKDF: parameters that would make a node allocate or
// compute without bound are refused by ParseConfig, before anything
// calls Argon2.
func TestConfigHostileKDF(t *testing.T) {
	r := newTestRepo(t, Passphrase("pw"), EncryptionAge)
	for _, tc := range []struct {
		name  string
		muts  []mutation
		words []string
	}{
		{"memory 1 TiB", []mutation{set("kdf.memory_kib", 1<<30)}, []string{"kdf memory 1073741824 KiB"}},
		{"memory 1 GiB + 1 KiB", []mutation{set("kdf.memory_kib", maxKDFMemoryKiB+1)}, []string{"kdf memory 1048577 KiB"}},
		{"memory max uint32", []mutation{set("kdf.memory_kib", uint32(1<<32-1))}, []string{"kdf memory"}},
		{"memory too small", []mutation{set("kdf.memory_kib", minKDFMemoryKiB-1)}, []string{"kdf memory 8191 KiB"}},
		{"memory zero", []mutation{set("kdf.memory_kib", 0)}, []string{"kdf memory 0"}},
		{"time 1e6", []mutation{set("kdf.time", 1000000)}, []string{"kdf time 1000000"}},
		{"time 11", []mutation{set("kdf.time", maxKDFTime+1)}, []string{"kdf time 11: expected 1 to 10"}},
		{"threads 17", []mutation{set("kdf.threads", maxKDFThreads+1)}, []string{"kdf threads 17: expected 1 to 16"}},
		{"time zero", []mutation{set("kdf.time", 0)}, []string{"kdf time 0"}},
		{"threads zero", []mutation{set("kdf.threads", 0)}, []string{"kdf threads 0"}},
		{"memory beyond uint32", []mutation{set("kdf.memory_kib", uint64(1<<40))}, []string{"not valid JSON"}},
		{"both", []mutation{set("kdf.memory_kib", 1<<30), set("kdf.time", 1000000)}, []string{"kdf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(mutate(t, r.json, tc.muts...))
			if c != nil {
				t.Fatal("ParseConfig accepted it")
			}
			wantErr(t, err, errs(ErrConfigCorrupt), tc.words...)
		})
	}
}

func TestNewConfigRefuses(t *testing.T) {
	short := func(n int) io.Reader { return bytes.NewReader(make([]byte, n)) }
	for _, tc := range []struct {
		name   string
		rnd    io.Reader
		secret Secret
		enc    Encryption
		kdf    KDFParams
		words  string
	}{
		{"unknown encryption", rand.Reader, GenerateKey(), "aes", cheapKDF, `encryption "aes"`},
		{"encryption without a secret", rand.Reader, NoSecret(), EncryptionAge, cheapKDF, "encryption needs a passphrase or a key file"},
		{"weak kdf", rand.Reader, Passphrase("pw"), EncryptionAge, KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}, "kdf memory 1024"},
		{"zero kdf", rand.Reader, Passphrase("pw"), EncryptionAge, KDFParams{}, "kdf time 0"},
		{"empty passphrase", rand.Reader, Passphrase(""), EncryptionAge, cheapKDF, "passphrase is empty"},
		{"zero secret", rand.Reader, Secret{}, EncryptionAge, cheapKDF, "unknown secret kind"},
		{"no randomness", short(0), GenerateKey(), EncryptionAge, cheapKDF, "generating the repository ID"},
		{"no salt", short(16), Passphrase("pw"), EncryptionAge, cheapKDF, "generating the salt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, k, err := NewConfig(tc.rnd, tc.secret, tc.enc, tc.kdf)
			if err == nil || c != nil || k != nil {
				t.Fatalf("NewConfig: %v, %v, %v", c, k, err)
			}
			if !strings.Contains(err.Error(), tc.words) {
				t.Errorf("error %q does not say %q", err, tc.words)
			}
		})
	}
}

func TestRepoIDs(t *testing.T) {
	a, b := NewRepoID(), NewRepoID()
	if a == b || a == (RepoID{}) {
		t.Fatal("repository IDs are not random")
	}
	for _, s := range []string{a.String(), " " + a.String() + "\n", strings.ToUpper(a.String())} {
		got, err := ParseRepoID(s)
		if err != nil || got != a {
			t.Errorf("ParseRepoID(%q) = %s, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "abc", a.String() + "00", a.String()[:31] + "z"} {
		if _, err := ParseRepoID(s); err == nil || !strings.Contains(err.Error(), "32 hex digits") {
			t.Errorf("ParseRepoID(%q): %v", s, err)
		}
	}
}

// TestErrorsDistinct: the sentinels are distinct, so errors.Is tells them
// apart.
func TestErrorsDistinct(t *testing.T) {
	all := []error{ErrWrongSecret, ErrConfigCorrupt, ErrRecordCorrupt, ErrBlobTruncated, ErrBlobCorrupt, ErrInsecureFile}
	for i, a := range all {
		for j, b := range all {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, errors.Is(a, b))
			}
		}
	}
}
