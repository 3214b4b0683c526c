package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/backup"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/sync/layout"
)

func openRelay(t *testing.T, rawURL string, opts relay.Options) relay.Relay {
	t.Helper()
	r, err := all.Open(context.Background(), rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func fileRelay(t *testing.T) relay.Relay {
	return openRelay(t, "file://"+t.TempDir(), relay.Options{})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func put(t *testing.T, r relay.Relay, name string, data []byte) {
	t.Helper()
	if err := r.Put(context.Background(), name, relay.BytesPayload(data)); err != nil {
		t.Fatal(err)
	}
}

// newRepo fills r with a repository: a real escale.json and records and
// blobs of two nodes (random bytes, as encrypted objects look), one of
// them empty and one larger than the copy buffer. It also stores two
// objects that are not part of the repository. It returns the
// repository's objects.
func newRepo(t *testing.T, r relay.Relay) map[string][]byte {
	t.Helper()
	cfg, _, err := crypto.NewConfig(rand.Reader, crypto.GenerateKey(), crypto.EncryptionAge, crypto.DefaultKDF())
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string][]byte{crypto.ConfigName: cfg.Marshal()}
	for _, size := range []int{0, 100, 200 << 10} {
		node := crypto.NewNodeID()
		for seq := range uint64(3) {
			objs[layout.LogName(node, seq)] = randomBytes(size + int(seq))
		}
		objs["nodes/"+node.String()+"/snap/0000000000000001"] = randomBytes(size + 7)
		objs[layout.BlobName(node, crypto.NewBlobID())] = randomBytes(size)
	}
	for name, data := range objs {
		put(t, r, name, data)
	}
	put(t, r, "tmp/"+crypto.NewNodeID().String()+"/upload", []byte("in progress"))
	put(t, r, "notes/readme.txt", []byte("not escalefs's"))
	return objs
}

// contents reads every object of r.
func contents(t *testing.T, r relay.Relay) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := make(map[string][]byte)
	err := r.List(ctx, "", func(oi relay.ObjectInfo) error {
		return r.Get(ctx, oi.Name, 0, -1, func(rd io.Reader) error {
			b, err := io.ReadAll(rd)
			out[oi.Name] = b
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameObjects(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	if g, w := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)); !slices.Equal(g, w) {
		t.Fatalf("%s: objects\n%v\nwant\n%v", what, g, w)
	}
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: %s differs (%d bytes, want %d)", what, name, len(got[name]), len(data))
		}
	}
}

// archiveOf backs up src into a plain tar in memory.
func archiveOf(t *testing.T, src backup.Source, opts backup.Options) ([]byte, backup.Summary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := backup.Write(context.Background(), src, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

func verify(data []byte) (*backup.Index, error) {
	return backup.Verify(context.Background(), bytes.NewReader(data), int64(len(data)))
}

// roundTrip backs up a repository on src, restores it onto the empty dst
// and checks that dst holds exactly the repository's objects.
func roundTrip(t *testing.T, src, dst relay.Relay) {
	objs := newRepo(t, src)
	var logs bytes.Buffer
	data, sum := archiveOf(t, src, backup.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), ProgressEvery: 5})
	if sum.Objects != len(objs) || sum.Vanished != 0 || sum.Ignored != 2 {
		t.Errorf("summary %+v, want %d objects, 2 ignored", sum, len(objs))
	}
	var total int64
	for _, d := range objs {
		total += int64(len(d))
	}
	if sum.Bytes != total {
		t.Errorf("summary: %d bytes, want %d", sum.Bytes, total)
	}
	if n := strings.Count(logs.String(), "backup progress"); n != len(objs)/5 {
		t.Errorf("%d progress lines for %d objects, want %d:\n%s", n, len(objs), len(objs)/5, logs.String())
	}
	idx, err := verify(data)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := backup.Restore(context.Background(), dst, bytes.NewReader(data), idx, backup.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Objects != len(objs) || rs.Bytes != total || rs.Skipped != 0 {
		t.Errorf("restore summary %+v, want %d objects, %d bytes", rs, len(objs), total)
	}
	sameObjects(t, "restored relay", contents(t, dst), objs)
}

func TestRoundTripFile(t *testing.T) {
	roundTrip(t, fileRelay(t), fileRelay(t))
}

func TestRoundTripNginx(t *testing.T) {
	s := testserver.StartNginx(t, testserver.DAVOptions{})
	open := func() relay.Relay {
		raw, _ := s.Subdir(t)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.User(s.User)
		return openRelay(t, u.String(), relay.Options{Password: s.Password})
	}
	roundTrip(t, open(), open())
}

func TestRoundTripPureFTPd(t *testing.T) {
	s := testserver.StartPureFTPd(t)
	open := func() relay.Relay {
		u, _ := s.NewRelayDir(t, "ftp")
		return openRelay(t, u.String(), relay.Options{Password: s.Password})
	}
	roundTrip(t, open(), open())
}

func TestNoRepository(t *testing.T) {
	r := fileRelay(t)
	put(t, r, "notes/x", []byte("x"))
	_, err := backup.Write(context.Background(), r, io.Discard, backup.Options{})
	if !errors.Is(err, backup.ErrNoRepository) {
		t.Fatalf("backup of a relay without escale.json: %v", err)
	}
}

// vanishing deletes one object just before it is read, as a node collecting
// it would.
type vanishing struct {
	relay.Relay
	name string
}

func (v *vanishing) Get(ctx context.Context, name string, off, n int64, fn func(io.Reader) error) error {
	if name == v.name {
		if err := v.Relay.Delete(ctx, name); err != nil {
			return err
		}
	}
	return v.Relay.Get(ctx, name, off, n, fn)
}

func TestVanishedObject(t *testing.T) {
	r := fileRelay(t)
	objs := newRepo(t, r)
	var gone string
	for name := range objs {
		if strings.HasPrefix(name, "blobs/") {
			gone = name
			break
		}
	}
	var logs bytes.Buffer
	data, sum := archiveOf(t, &vanishing{Relay: r, name: gone}, backup.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if sum.Vanished != 1 || sum.Objects != len(objs)-1 {
		t.Errorf("summary %+v, want 1 vanished and %d objects", sum, len(objs)-1)
	}
	if !strings.Contains(logs.String(), gone) || !strings.Contains(logs.String(), "skipped") {
		t.Errorf("no note about %s:\n%s", gone, logs.String())
	}
	idx, err := verify(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range idx.Entries {
		if e.Name == gone {
			t.Errorf("the archive holds %s", gone)
		}
	}
}

// flaky fails the first read of every Get halfway, then calls fn again
// from the start, as the retry wrapper does; with changed, the second
// read sees other bytes.
type flaky struct {
	relay.Relay
	changed bool
}

func (f *flaky) Get(ctx context.Context, name string, off, n int64, fn func(io.Reader) error) error {
	return f.Relay.Get(ctx, name, off, n, func(r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(data) > 1 {
			if err := fn(io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{})); err == nil {
				return errors.New("fn succeeded over a failing reader")
			}
			if f.changed && name != crypto.ConfigName {
				data[0] ^= 1
			}
		}
		return fn(bytes.NewReader(data))
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestRetriedGet(t *testing.T) {
	r := fileRelay(t)
	objs := newRepo(t, r)
	data, _ := archiveOf(t, &flaky{Relay: r}, backup.Options{})
	idx, err := verify(data)
	if err != nil {
		t.Fatal(err)
	}
	dst := fileRelay(t)
	if _, err := backup.Restore(context.Background(), dst, bytes.NewReader(data), idx, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	sameObjects(t, "restored relay", contents(t, dst), objs)

	_, err = backup.Write(context.Background(), &flaky{Relay: r, changed: true}, io.Discard, backup.Options{})
	if !errors.Is(err, backup.ErrChanged) {
		t.Errorf("an object that changed between two reads: %v", err)
	}
}

// entry is one tar entry of a hand-made archive.
type entry struct {
	name string
	data []byte
	typ  byte
}

// makeArchive writes entries and a manifest (edited by edit, when given) as
// a tar.
func makeArchive(t *testing.T, entries []entry, edit func(*backup.Manifest)) []byte {
	t.Helper()
	m := backup.Manifest{Format: backup.ManifestFormat, Version: backup.ManifestVersion}
	for _, e := range entries {
		if e.name == crypto.ConfigName {
			cfg, err := crypto.ParseConfig(e.data)
			if err != nil {
				t.Fatal(err)
			}
			m.Repository = cfg.Repository.String()
		}
		h := sha256.Sum256(e.data)
		m.Entries = append(m.Entries, backup.ManifestEntry{Name: e.name, Size: int64(len(e.data)), SHA256: hex.EncodeToString(h[:])})
		m.Bytes += int64(len(e.data))
	}
	m.Objects = len(m.Entries)
	if edit != nil {
		edit(&m)
	}
	man, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range slices.Concat(entries, []entry{{name: backup.ManifestName, data: man}}) {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.data))
		if typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: typ, Name: e.name, Size: size, Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write(e.data)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func goodEntries(t *testing.T) []entry {
	cfg, _, err := crypto.NewConfig(rand.Reader, crypto.GenerateKey(), crypto.EncryptionAge, crypto.DefaultKDF())
	if err != nil {
		t.Fatal(err)
	}
	node := crypto.NewNodeID()
	return []entry{
		{name: crypto.ConfigName, data: cfg.Marshal()},
		{name: layout.LogName(node, 0), data: randomBytes(3000)},
		{name: layout.BlobName(node, crypto.NewBlobID()), data: randomBytes(5000)},
	}
}

// Every damaged archive is refused by Verify with a message that names the
// entry and what is wrong.
func TestVerifyRefuses(t *testing.T) {
	good := goodEntries(t)
	logName, blobName := good[1].name, good[2].name
	if _, err := verify(makeArchive(t, good, nil)); err != nil {
		t.Fatalf("a good archive: %v", err)
	}
	with := func(extra ...entry) []entry { return append(slices.Clone(good), extra...) }
	flip := func() []byte {
		a := makeArchive(t, good, nil)
		i := bytes.Index(a, good[2].data[:64])
		a[i+100] ^= 0x40
		return a
	}
	full := makeArchive(t, good, nil)
	for _, tc := range []struct {
		name    string
		archive []byte
		want    []string
	}{
		{"flipped byte", flip(), []string{blobName, "SHA-256", "expected (manifest), got"}},
		{"truncated in an entry", full[:bytes.Index(full, good[2].data[:64])+1000], []string{blobName, "truncated", "5000 bytes expected"}},
		{"truncated before the manifest", full[:bytes.Index(full, good[2].data[:64])+5120], []string{"no manifest", "truncated"}},
		{"empty", nil, []string{"no entries"}},
		{"size mismatch", makeArchive(t, good, func(m *backup.Manifest) { m.Entries[1].Size++ }),
			[]string{logName, "3001 bytes expected (manifest), got 3000"}},
		{"hash mismatch", makeArchive(t, good, func(m *backup.Manifest) { m.Entries[2].SHA256 = strings.Repeat("0", 64) }),
			[]string{blobName, "SHA-256 " + strings.Repeat("0", 64) + " expected"}},
		{"unlisted entry", makeArchive(t, good, func(m *backup.Manifest) { m.Entries = m.Entries[:2]; m.Objects = 2 }),
			[]string{blobName, "not listed in the manifest"}},
		{"listed, missing", makeArchive(t, good[:2], func(m *backup.Manifest) {
			m.Entries = append(m.Entries, backup.ManifestEntry{Name: blobName, Size: 1, SHA256: "00"})
			m.Objects++
		}), []string{blobName, "missing from the archive"}},
		{"object count", makeArchive(t, good, func(m *backup.Manifest) { m.Objects = 7 }), []string{"says 7 objects but lists 3"}},
		{"wrong repository", makeArchive(t, good, func(m *backup.Manifest) { m.Repository = strings.Repeat("ab", 16) }),
			[]string{"escale.json", "the manifest says " + strings.Repeat("ab", 16)}},
		{"manifest format", makeArchive(t, good, func(m *backup.Manifest) { m.Format = "tarball" }), []string{`format "tarball"`}},
		{"newer manifest", makeArchive(t, good, func(m *backup.Manifest) { m.Version = 2 }), []string{"upgrade escalefs"}},
		{"dot-dot", makeArchive(t, with(entry{name: "blobs/../../etc/passwd", data: []byte("x")}), nil),
			[]string{`"blobs/../../etc/passwd"`, ". or .. component"}},
		{"absolute", makeArchive(t, with(entry{name: "/blobs/x", data: []byte("x")}), nil), []string{`"/blobs/x"`, "relative"}},
		{"outside the repository", makeArchive(t, with(entry{name: "notes/x", data: []byte("x")}), nil),
			[]string{`"notes/x"`, "not an object of a repository"}},
		{"temporary name", makeArchive(t, with(entry{name: "blobs/a/" + relay.TempPrefix + "0011", data: []byte("x")}), nil),
			[]string{"reserved prefix"}},
		{"duplicate", makeArchive(t, with(good[1]), nil), []string{logName, "appears twice"}},
		{"symlink", makeArchive(t, with(entry{name: "blobs/a/b", typ: tar.TypeSymlink}), nil), []string{`"blobs/a/b"`, "not a regular file"}},
		{"no escale.json", makeArchive(t, []entry{good[1], good[2]}, nil), []string{"no escale.json"}},
		{"entry after the manifest", append(full[:len(full)-1024:len(full)-1024], makeArchive(t, good[1:2], nil)...),
			[]string{logName, "follows the manifest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(tc.archive)
			if !errors.Is(err, backup.ErrCorrupt) {
				t.Fatalf("Verify: %v, want ErrCorrupt", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A restore into a relay that holds a repository is refused unless
// Force, and always when it is another repository; with Force the objects
// present with the same size are skipped.
func TestRestoreTarget(t *testing.T) {
	ctx := context.Background()
	src := fileRelay(t)
	objs := newRepo(t, src)
	data, _ := archiveOf(t, src, backup.Options{})
	idx, err := verify(data)
	if err != nil {
		t.Fatal(err)
	}
	restore := func(dst relay.Relay, force bool) (backup.RestoreSummary, error) {
		return backup.Restore(ctx, dst, bytes.NewReader(data), idx, backup.RestoreOptions{Force: force})
	}

	other := fileRelay(t)
	otherObjs := newRepo(t, other)
	for _, force := range []bool{false, true} {
		_, err := restore(other, force)
		if !errors.Is(err, backup.ErrOtherRepository) || !strings.Contains(err.Error(), idx.Manifest.Repository) {
			t.Errorf("restore into another repository (force %v): %v", force, err)
		}
	}
	after := contents(t, other)
	delete(after, "notes/readme.txt")
	for name := range after {
		if strings.HasPrefix(name, "tmp/") {
			delete(after, name)
		}
	}
	sameObjects(t, "the other repository", after, otherObjs)

	// The same repository, partly there: a blob lost, a record cut short.
	same := fileRelay(t)
	var lost, cut string
	for name, d := range objs {
		switch {
		case lost == "" && strings.HasPrefix(name, "blobs/") && len(d) > 0:
			lost = name
		case cut == "" && strings.HasPrefix(name, "nodes/") && len(d) > 1:
			cut = name
		}
	}
	for name, d := range objs {
		switch name {
		case lost:
		case cut:
			put(t, same, name, d[:len(d)-1])
		default:
			put(t, same, name, d)
		}
	}
	if _, err := restore(same, false); !errors.Is(err, backup.ErrNotEmpty) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("restore into the same repository without force: %v", err)
	}
	sum, err := restore(same, true)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Objects != 2 || sum.Skipped != len(objs)-2 {
		t.Errorf("restore with force: %+v, want 2 put, %d skipped", sum, len(objs)-2)
	}
	sameObjects(t, "relay restored with force", contents(t, same), objs)
}

// Archives are written and read compressed by name, through a pipe, and a
// failed backup leaves no file.
func TestFiles(t *testing.T) {
	ctx := context.Background()
	src := fileRelay(t)
	objs := newRepo(t, src)
	dir := t.TempDir()
	for _, name := range []string{"a.tar", "a.tar.gz", "a.tgz"} {
		path := filepath.Join(dir, name)
		out, err := backup.Create(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := backup.Write(ctx, src, out, backup.Options{}); err != nil {
			t.Fatal(err)
		}
		if err := out.Commit(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if gz := raw[0] == 0x1f && raw[1] == 0x8b; gz != backup.Compressed(name) {
			t.Errorf("%s: gzip %v", name, gz)
		}
		for _, how := range []string{"file", "stdin"} {
			var a *backup.Archive
			if how == "file" {
				a, err = backup.Open(path, nil, t.TempDir())
			} else {
				a, err = backup.Open("-", bytes.NewReader(raw), t.TempDir())
			}
			if err != nil {
				t.Fatal(err)
			}
			idx, err := backup.Verify(ctx, a, a.Size)
			if err != nil {
				t.Fatalf("%s from %s: %v", name, how, err)
			}
			dst := fileRelay(t)
			if _, err := backup.Restore(ctx, dst, a, idx, backup.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			a.Close()
			sameObjects(t, name+" from "+how, contents(t, dst), objs)
		}
	}

	// A truncated gzip stream.
	raw, err := os.ReadFile(filepath.Join(dir, "a.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Open("-", bytes.NewReader(raw[:len(raw)/2]), t.TempDir()); !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("a truncated gzip archive: %v", err)
	}

	// A failed backup leaves nothing behind.
	before, _ := os.ReadDir(dir)
	out, err := backup.Create(filepath.Join(dir, "b.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Write(ctx, fileRelay(t), out, backup.Options{}); err == nil {
		t.Fatal("backup of an empty relay succeeded")
	}
	out.Abort()
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("a failed backup left files: %v", after)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.tar")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b.tar: %v", err)
	}
}
