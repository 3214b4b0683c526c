package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Fuzz targets, one per decoder of data a relay or a user supplies. The
// known-answer repositories under testdata/kat provide fixed secrets and
// genuine inputs, so every fuzzing process agrees on what is genuine.
// make fuzz runs each for a few seconds.

// katRepo is a known-answer repository loaded from testdata.
type katRepo struct {
	json   []byte
	config *Config
	secret Secret
	keys   *Keys
}

func loadKATRepo(tb testing.TB, dir string) katRepo {
	tb.Helper()
	path := func(name string) string { return filepath.Join("testdata", "kat", dir, name) }
	data, err := os.ReadFile(path("escale.json"))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		tb.Fatal(err)
	}
	r := katRepo{json: data, config: c, secret: NoSecret()}
	switch c.Secret {
	case SecretKey:
		text, err := os.ReadFile(path("key.txt"))
		if err != nil {
			tb.Fatal(err)
		}
		if r.secret, err = ParseKeyFile(text); err != nil {
			tb.Fatal(err)
		}
	case SecretPassphrase:
		r.secret = Passphrase("correct horse battery staple")
	}
	if r.keys, err = c.Unlock(r.secret); err != nil {
		tb.Fatal(err)
	}
	return r
}

func readKAT(tb testing.TB, dir, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kat", dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func FuzzParseConfig(f *testing.F) {
	for _, dir := range []string{"passphrase", "key", "key-off", "none"} {
		data := readKAT(f, dir, "escale.json")
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte(`{"format":"escalefs","version":1,"repository":"00000000000000000000000000000000","encryption":"age","secret":"passphrase","kdf":{"algorithm":"argon2id","salt":"AAAAAAAAAAAAAAAAAAAAAA==","time":1000000,"memory_kib":1073741824,"threads":255},"key_check":"","mac":""}`))
	f.Add([]byte(`{"format":"escalefs","version":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if c != nil || !errors.Is(err, ErrConfigCorrupt) {
				t.Fatalf("ParseConfig: %v, %v", c, err)
			}
			return
		}
		// What parses is within bounds and survives a round trip.
		if c.Secret == SecretPassphrase {
			if err := checkKDF(c.KDF); err != nil {
				t.Fatalf("accepted KDF parameters %+v: %v", c.KDF, err)
			}
		}
		again, err := ParseConfig(c.Marshal())
		if err != nil {
			t.Fatalf("ParseConfig(Marshal(c)): %v", err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, again)
		}
	})
}

func FuzzUnlock(f *testing.F) {
	repos := []katRepo{loadKATRepo(f, "passphrase"), loadKATRepo(f, "key"), loadKATRepo(f, "key-off"), loadKATRepo(f, "none")}
	secrets := map[SecretKind]Secret{}
	for _, r := range repos {
		secrets[r.config.Secret] = r.secret
		f.Add(r.json)
		f.Add(bytes.Replace(r.json, []byte(`"age"`), []byte(`"off"`), 1))
	}
	// Cheap parameters only in the seeds: Argon2 runs on every input that
	// gets as far as Unlock.
	f.Add(bytes.Replace(repos[0].json, []byte(`"time": 2`), []byte(`"time": 1`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Keep each run fast: skip the dearer (but valid) KDF settings.
		if c.Secret == SecretPassphrase && (c.KDF.MemoryKiB > 2*minKDFMemoryKiB || c.KDF.Time > 3 || c.KDF.Threads > 4) {
			return
		}
		secret, ok := secrets[c.Secret]
		if !ok {
			t.Fatalf("ParseConfig accepted secret kind %q", c.Secret)
		}
		keys, err := c.Unlock(secret)
		if err != nil {
			if keys != nil || !(errors.Is(err, ErrWrongSecret) || errors.Is(err, ErrConfigCorrupt)) {
				t.Fatalf("Unlock: %v, %v", keys, err)
			}
			return
		}
		if c.Secret == SecretNone {
			return // nothing to authenticate
		}
		// Unlocking authenticates every field: the config is one of the
		// genuine ones, whatever its JSON spelling.
		for _, r := range repos {
			if reflect.DeepEqual(c, r.config) {
				sameKeys(t, keys, r.keys)
				return
			}
		}
		t.Fatalf("an altered config unlocked: %s", c.Marshal())
	})
}

func FuzzOpenRecord(f *testing.F) {
	keyed := loadKATRepo(f, "key")
	none := loadKATRepo(f, "none")
	sealers := map[bool]*RecordSealer{
		true:  NewRecordSealer(keyed.keys, RepoID{}, nil),
		false: NewRecordSealer(nil, none.config.Repository, nil),
	}
	for _, r := range []struct {
		dir   string
		keyed bool
	}{{"key", true}, {"none", false}} {
		var v katVectors
		if err := json.Unmarshal(readKAT(f, r.dir, "vectors.json"), &v); err != nil {
			f.Fatal(err)
		}
		for _, rec := range v.Records {
			b, _ := hex.DecodeString(rec.Record)
			f.Add(b, rec.Seq, rec.Kind, r.keyed)
			f.Add(b, rec.Seq+1, rec.Kind, r.keyed)
			f.Add(b, rec.Seq, rec.Kind, !r.keyed)
			f.Add(b[:len(b)-1], rec.Seq, rec.Kind, r.keyed)
		}
	}
	f.Add([]byte("ESR1\x03"), uint64(0), "", true)
	f.Fuzz(func(t *testing.T, record []byte, seq uint64, kind string, isKeyed bool) {
		s := sealers[isKeyed]
		rc := RecordContext{Node: katNode, Seq: seq, Kind: kind}
		pt, err := s.Open(rc, record)
		if err != nil {
			if pt != nil || !errors.Is(err, ErrRecordCorrupt) {
				t.Fatalf("Open: %q, %v", pt, err)
			}
			return
		}
		// A record that opens is exactly what sealing its plaintext in
		// that context (with its nonce) gives: nothing else authenticates.
		var again []byte
		if isKeyed {
			again, err = NewRecordSealer(keyed.keys, RepoID{}, bytes.NewReader(record[5:5+24])).Seal(rc, pt)
		} else {
			again, err = NewRecordSealer(nil, none.config.Repository, nil).Seal(rc, pt)
		}
		if err != nil {
			t.Fatalf("re-sealing an opened record: %v", err)
		}
		if !bytes.Equal(again, record) {
			t.Fatalf("record %x opened, but sealing its plaintext gives %x", record, again)
		}
		if pt2, err := s.Open(rc, again); err != nil || !bytes.Equal(pt2, pt) {
			t.Fatalf("re-sealed record: %q, %v", pt2, err)
		}
	})
}

func FuzzOpenBlob(f *testing.F) {
	ageRepo := loadKATRepo(f, "key")
	offRepo := loadKATRepo(f, "key-off")
	genuine := readKAT(f, "key", "blob.age")
	ref := refOver(katBlobID, genuine)
	plainRef := refOver(katBlobID, []byte(katPlaintext))
	for mode := range byte(3) {
		f.Add(genuine, mode)
		f.Add(genuine[:len(genuine)-1], mode)
		f.Add(genuine[:100], mode)
		f.Add([]byte(katPlaintext), mode)
	}
	flipped := bytes.Clone(genuine)
	flipped[len(flipped)/2] ^= 1
	f.Add(flipped, byte(0))
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		keys, r, want := ageRepo.keys, refOver(katBlobID, data), genuine
		switch mode % 3 {
		case 1:
			r = ref // the record's ref
		case 2:
			keys, r, want = offRepo.keys, plainRef, []byte(katPlaintext)
		}
		rd, err := OpenBlob(keys, bytes.NewReader(data), r)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(rd)
		}
		if err != nil {
			if !errors.Is(err, ErrBlobCorrupt) && !errors.Is(err, ErrBlobTruncated) {
				t.Fatalf("OpenBlob: %v", err)
			}
			if !strings.Contains(err.Error(), katBlobID.String()) {
				t.Fatalf("error %q does not name the blob", err)
			}
			return
		}
		// Success only for the genuine blob, and only its plaintext.
		if !bytes.Equal(data, want) {
			t.Fatalf("OpenBlob accepted %d bytes that are not the genuine blob: %x", len(data), data)
		}
		if string(got) != katPlaintext {
			t.Fatalf("OpenBlob returned %q", got)
		}
	})
}

func FuzzBlobReaderAt(f *testing.F) {
	repo := loadKATRepo(f, "key")
	genuine := readKAT(f, "key", "blob.age")
	f.Add(genuine, int64(0), uint16(10))
	f.Add(genuine, int64(5), uint16(1000))
	f.Add(genuine, int64(len(katPlaintext)), uint16(1))
	f.Add(genuine, int64(-1), uint16(1))
	f.Add(genuine[:len(genuine)-1], int64(0), uint16(10))
	f.Add([]byte(katPlaintext), int64(0), uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, off int64, n uint16) {
		ra, size, err := BlobReaderAt(repo.keys, katBlobID, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrBlobCorrupt) && !errors.Is(err, ErrBlobTruncated) {
				t.Fatalf("BlobReaderAt: %v", err)
			}
			return
		}
		if size != int64(len(katPlaintext)) {
			t.Fatalf("BlobReaderAt accepted a blob of %d plaintext bytes", size)
		}
		p := make([]byte, n)
		got, err := ra.ReadAt(p, off)
		if got < 0 || got > len(p) {
			t.Fatalf("ReadAt returned %d of %d", got, len(p))
		}
		if err != nil && err != io.EOF && !errors.Is(err, ErrBlobCorrupt) {
			t.Fatalf("ReadAt: %v", err)
		}
		// Whatever it returns authenticated is the genuine plaintext.
		if got > 0 && (off < 0 || off+int64(got) > size || string(p[:got]) != katPlaintext[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d, %d) returned %q", n, off, p[:got])
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add(readKAT(f, "key", "key.txt"))
	f.Add([]byte("escalefs-key-1:gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8"))
	f.Add([]byte("escalefs-key-1:gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8=\n"))
	f.Add([]byte("# comment\r\n\r\nescalefs-key-1:\r\n"))
	f.Add([]byte("AGE-SECRET-KEY-1K2HDS40V62W579A4S3RPLKJWKFNZHK5SDD6J7YNVWKTHEWUTJG4S4T994A\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseKeyFile(data)
		if err != nil {
			if s.Kind() != "" || !strings.HasPrefix(err.Error(), "not an escalefs key file") {
				t.Fatalf("ParseKeyFile: %v, %v", s, err)
			}
			return
		}
		if s.Kind() != SecretKey || len(s.material()) != KeySize {
			t.Fatalf("ParseKeyFile gave a %q secret of %d bytes", s.Kind(), len(s.material()))
		}
		text, err := MarshalKeyFile(s, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseKeyFile(text)
		if err != nil || !bytes.Equal(again.material(), s.material()) {
			t.Fatalf("key file round trip: %v", err)
		}
		// The key is the one line's base64url, nothing else of the input.
		if !bytes.Contains(data, text[bytes.LastIndex(text, []byte(keyFilePrefix)):len(text)-1]) {
			t.Fatalf("parsed a key that is not written in %q", data)
		}
	})
}
