package crypto

import (
	"bytes"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// testSealer is a record sealer with a name for subtests.
type testSealer struct {
	name  string
	s     *RecordSealer
	keyed bool
}

// recordSealers returns a keyed and a keyless sealer of two new
// repositories.
func recordSealers(t testing.TB) []testSealer {
	return []testSealer{
		{"keyed", NewRecordSealer(testKeys(t, EncryptionAge), RepoID{}, rand.Reader), true},
		{"keyless", NewRecordSealer(nil, NewRepoID(), rand.Reader), false},
	}
}

var (
	nodeA = NodeID{0xaa, 1, 2, 3}
	nodeB = NodeID{0xbb, 1, 2, 3}
)

func seal(t testing.TB, s *RecordSealer, rc RecordContext, pt []byte) []byte {
	t.Helper()
	rec, err := s.Seal(rc, pt)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// wantRecordErr fails t unless opening rec in rc fails with
// ErrRecordCorrupt, names the context and says every one of words.
func wantRecordErr(t testing.TB, s *RecordSealer, rc RecordContext, rec []byte, words ...string) {
	t.Helper()
	pt, err := s.Open(rc, rec)
	if pt != nil {
		t.Errorf("failed Open returned %d bytes of plaintext", len(pt))
	}
	wantErr(t, err, errs(ErrRecordCorrupt), append(words, fmt.Sprintf("record %d of node %s", rc.Seq, rc.Node))...)
}

func TestRecordRoundTrip(t *testing.T) {
	plaintexts := [][]byte{nil, {}, []byte("x"), prngBytes(1, 1000), prngBytes(2, mib)}
	contexts := []RecordContext{
		{Node: nodeA, Seq: 0, Kind: "log"},
		{Node: nodeA, Seq: 1<<64 - 1, Kind: ""},
		{Node: NodeID{}, Seq: 5, Kind: strings.Repeat("k", 255)},
		{Node: nodeB, Seq: 1 << 40, Kind: "snapshot\x00\xff"},
	}
	for _, ts := range recordSealers(t) {
		for _, rc := range contexts {
			for _, pt := range plaintexts {
				rec := seal(t, ts.s, rc, pt)
				if !bytes.HasPrefix(rec, []byte("ESR1")) {
					t.Fatalf("%s: record starts %q", ts.name, rec[:5])
				}
				got, err := ts.s.Open(rc, rec)
				if err != nil {
					t.Fatalf("%s: Open(%+v, %d bytes): %v", ts.name, rc, len(pt), err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("%s: opened %d bytes, sealed %d", ts.name, len(got), len(pt))
				}
				// The plaintext does not alias the record.
				if len(got) > 0 {
					for i := range rec {
						rec[i] ^= 0xff
					}
					if !bytes.Equal(got, pt) {
						t.Fatalf("%s: the opened plaintext shares memory with the record", ts.name)
					}
				}
			}
		}
		// Sealed records hide their plaintext and carry a fresh nonce;
		// keyless ones are deterministic.
		rc := contexts[0]
		pt := bytes.Repeat([]byte("secret text "), 10)
		r1, r2 := seal(t, ts.s, rc, pt), seal(t, ts.s, rc, pt)
		if ts.keyed {
			if bytes.Contains(r1, []byte("secret text")) {
				t.Errorf("sealed record shows its plaintext")
			}
			if bytes.Equal(r1, r2) {
				t.Errorf("two seals of the same plaintext are identical: the nonce is not fresh")
			}
			if len(r1) != 5+24+len(pt)+16 {
				t.Errorf("sealed record of %d bytes is %d bytes, want magic+mode+nonce+ciphertext+tag", len(pt), len(r1))
			}
		} else {
			if !bytes.Equal(r1, r2) {
				t.Errorf("keyless records of the same plaintext differ")
			}
			if len(r1) != 5+len(pt)+32 {
				t.Errorf("keyless record of %d bytes is %d bytes, want magic+mode+plaintext+SHA-256", len(pt), len(r1))
			}
		}
	}
}

// TestRecordMoved: a record opened anywhere but where it was written fails:
// replayed under another sequence number, reordered, copied into another
// node's log, read as another kind or in another repository.
func TestRecordMoved(t *testing.T) {
	for _, ts := range recordSealers(t) {
		t.Run(ts.name, func(t *testing.T) {
			rc5 := RecordContext{Node: nodeA, Seq: 5, Kind: "log"}
			rc6 := RecordContext{Node: nodeA, Seq: 6, Kind: "log"}
			r5 := seal(t, ts.s, rc5, []byte("content of 5"))
			r6 := seal(t, ts.s, rc6, []byte("content of 6"))
			if _, err := ts.s.Open(rc5, r5); err != nil {
				t.Fatal(err)
			}
			if _, err := ts.s.Open(rc6, r6); err != nil {
				t.Fatal(err)
			}
			what := "forged, altered, truncated, replayed or moved"
			if !ts.keyed {
				what = "checksum mismatch"
			}
			moved := map[string]RecordContext{
				"replayed later":         {Node: nodeA, Seq: 7, Kind: "log"},
				"replayed earlier":       {Node: nodeA, Seq: 0, Kind: "log"},
				"reordered (5 at 6)":     rc6,
				"replayed far":           {Node: nodeA, Seq: 5 + 1<<32, Kind: "log"},
				"another node":           {Node: nodeB, Seq: 5, Kind: "log"},
				"another kind":           {Node: nodeA, Seq: 5, Kind: "snapshot"},
				"kind with a suffix":     {Node: nodeA, Seq: 5, Kind: "log\x00"},
				"kind cut short":         {Node: nodeA, Seq: 5, Kind: "lo"},
				"no kind":                {Node: nodeA, Seq: 5},
				"node and seq swapped":   {Node: NodeID{5}, Seq: 0xaa, Kind: "log"},
				"kind longer than a len": {Node: nodeA, Seq: 5, Kind: strings.Repeat("log", 100)},
			}
			for name, rc := range moved {
				t.Run(name, func(t *testing.T) { wantRecordErr(t, ts.s, rc, r5, what) })
			}
			// Seq 6's content at 5: reordered the other way.
			wantRecordErr(t, ts.s, rc5, r6, what)

			// Another repository, whether keyed or not.
			for _, other := range recordSealers(t) {
				if other.keyed == ts.keyed {
					wantRecordErr(t, other.s, rc5, r5, what)
				}
			}
		})
	}
	// A keyless repository binds its ID too.
	id := NewRepoID()
	other := id
	other[15] ^= 1
	rec := seal(t, NewRecordSealer(nil, id, nil), RecordContext{Node: nodeA, Seq: 1}, []byte("x"))
	wantRecordErr(t, NewRecordSealer(nil, other, nil), RecordContext{Node: nodeA, Seq: 1}, rec, "checksum mismatch")
}

// TestRecordForged: without the key no record opens, whatever its bytes.
func TestRecordForged(t *testing.T) {
	s := recordSealers(t)[0].s
	rc := RecordContext{Node: nodeA, Seq: 1, Kind: "log"}
	rng := mrand.New(mrand.NewPCG(4, 5))
	for i := range 2000 {
		n := rng.IntN(300)
		rec := append([]byte("ESR1\x01"), prngBytes(uint64(i), n)...)
		wantRecordErr(t, s, rc, rec)
	}
	// A keyless record's checksum is not a secret, but random bytes do not
	// match it either.
	ks := recordSealers(t)[1].s
	for i := range 500 {
		rec := append([]byte("ESR1\x02"), prngBytes(uint64(i), 32+i%100)...)
		wantRecordErr(t, ks, rc, rec, "checksum mismatch")
	}
}

func TestRecordBitFlips(t *testing.T) {
	rc := RecordContext{Node: nodeA, Seq: 9, Kind: "log"}
	for _, ts := range recordSealers(t) {
		rec := seal(t, ts.s, rc, []byte("a record of moderate length, to flip every bit of"))
		for i := range rec {
			for bit := range 8 {
				bad := bytes.Clone(rec)
				bad[i] ^= 1 << bit
				pt, err := ts.s.Open(rc, bad)
				if err == nil || pt != nil {
					t.Fatalf("%s: flipping bit %d of byte %d: %q, %v", ts.name, bit, i, pt, err)
				}
				wantErr(t, err, errs(ErrRecordCorrupt), "record 9 of node")
			}
		}
	}
}

func TestRecordTruncated(t *testing.T) {
	rc := RecordContext{Node: nodeA, Seq: 3, Kind: "log"}
	for _, ts := range recordSealers(t) {
		for _, pt := range [][]byte{nil, []byte("some plaintext")} {
			rec := seal(t, ts.s, rc, pt)
			for n := range len(rec) {
				var words []string
				if n < 5 {
					words = []string{"bad magic"}
				}
				wantRecordErr(t, ts.s, rc, rec[:n], words...)
			}
			wantRecordErr(t, ts.s, rc, append(bytes.Clone(rec), 0))
			// The tail alone, or the record without its first byte.
			wantRecordErr(t, ts.s, rc, rec[1:], "bad magic")
		}
	}
}

// TestRecordDowngrade: a relay cannot swap a sealed record for a keyless
// one (which anyone can compute) nor the other way round.
func TestRecordDowngrade(t *testing.T) {
	keys := testKeys(t, EncryptionAge)
	keyed := NewRecordSealer(keys, RepoID{}, rand.Reader)
	keyless := NewRecordSealer(nil, keys.Repository(), rand.Reader)
	rc := RecordContext{Node: nodeA, Seq: 1, Kind: "log"}

	plain := seal(t, keyless, rc, []byte("forged by the relay"))
	wantRecordErr(t, keyed, rc, plain, "unauthenticated record in a repository that has a secret")

	sealed := seal(t, keyed, rc, []byte("sealed"))
	wantRecordErr(t, keyless, rc, sealed, "sealed record in a repository without a secret")

	for _, mode := range []byte{0, 3, 0x81, 0xff} {
		for _, s := range []*RecordSealer{keyed, keyless} {
			bad := bytes.Clone(sealed)
			bad[4] = mode
			wantRecordErr(t, s, rc, bad, fmt.Sprintf("unknown record mode %d", mode))
		}
	}
	for _, magic := range []string{"ESR0", "ESR2", "esr1", "\x00SR1", "age-"} {
		for _, s := range []*RecordSealer{keyed, keyless} {
			bad := append([]byte(magic), sealed[4:]...)
			wantRecordErr(t, s, rc, bad, "bad magic")
		}
	}
}

func TestRecordLimits(t *testing.T) {
	rc := RecordContext{Node: nodeA, Seq: 1, Kind: "log"}
	big := make([]byte, MaxRecordSize+1)
	for _, ts := range recordSealers(t) {
		t.Run(ts.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ts.s.Seal(rc, big); err == nil || !strings.Contains(err.Error(), "exceeds") {
				t.Errorf("sealing %d bytes: %v", len(big), err)
			}
			long := RecordContext{Node: nodeA, Seq: 1, Kind: strings.Repeat("k", 256)}
			if _, err := ts.s.Seal(long, nil); err == nil || !strings.Contains(err.Error(), "longer than 255") {
				t.Errorf("sealing with a 256-byte kind: %v", err)
			}

			// The largest record round-trips.
			max := seal(t, ts.s, rc, big[:MaxRecordSize])
			if pt, err := ts.s.Open(rc, max); err != nil || len(pt) != MaxRecordSize {
				t.Fatalf("opening the largest record: %d bytes, %v", len(pt), err)
			}

			// An oversized one is refused before any work.
			var over []byte
			if ts.keyed {
				over = append([]byte("ESR1\x01"), make([]byte, 24+MaxRecordSize+1+16)...)
			} else {
				over = append([]byte("ESR1\x02"), make([]byte, MaxRecordSize+1+32)...)
			}
			wantRecordErr(t, ts.s, rc, over, "larger than the")
		})
	}
}

func TestNodeIDs(t *testing.T) {
	a, b := NewNodeID(), NewNodeID()
	if a == b || a == (NodeID{}) {
		t.Fatalf("node IDs %s and %s are not random", a, b)
	}
	got, err := ParseNodeID(a.String())
	if err != nil || got != a {
		t.Fatalf("ParseNodeID(%s) = %s, %v", a, got, err)
	}
	for _, bad := range []string{"", "00", a.String() + "00", a.String()[:31] + "g", " " + a.String()[1:]} {
		if _, err := ParseNodeID(bad); err == nil || !strings.Contains(err.Error(), "32 hex digits") {
			t.Errorf("ParseNodeID(%q): %v", bad, err)
		}
	}
}
