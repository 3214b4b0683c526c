package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/backup"
	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
)

// runIn is run with standard input.
func runIn(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd(&out, &errb)
	cmd.SetIn(stdin)
	cmd.SetArgs(args)
	code = execute(context.Background(), cmd, &errb)
	return out.String(), errb.String(), code
}

// relayObjects returns the SHA-256 of every object on the relay at rawURL.
func relayObjects(t *testing.T, rawURL string, opts relay.Options) map[string]string {
	t.Helper()
	ctx := context.Background()
	r, err := all.Open(ctx, rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := make(map[string]string)
	err = r.List(ctx, "", func(oi relay.ObjectInfo) error {
		return r.Get(ctx, oi.Name, 0, -1, func(rd io.Reader) error {
			h := sha256.New()
			_, err := io.Copy(h, rd)
			out[oi.Name] = hex.EncodeToString(h.Sum(nil))
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// twoNodeRepo makes a repository on the relay with two escalefs processes,
// each pushing a file and the second pulling the first's: the relay holds
// both nodes' records and blobs. It returns the files.
func twoNodeRepo(t *testing.T, bin, relayURL, key string, flags ...string) map[string]string {
	t.Helper()
	alice := newSyncNode(t, "alice", bin, relayURL, key)
	bob := newSyncNode(t, "bob", bin, relayURL, key)
	alice.flags, bob.flags = flags, flags
	files := map[string]string{"notes/a.txt": "from alice\n", "b/deep/b.bin": strings.Repeat("bob's data ", 20000)}
	alice.write(t, "notes/a.txt", files["notes/a.txt"])
	bob.write(t, "b/deep/b.bin", files["b/deep/b.bin"])
	alice.once(t)
	bob.once(t)
	if !bob.has("notes/a.txt", files["notes/a.txt"]) {
		t.Fatal("bob did not pull alice's file")
	}
	return files
}

// freshNodeGets syncs a new node against the relay and checks its folder.
func freshNodeGets(t *testing.T, bin, relayURL, key string, files map[string]string, flags ...string) {
	t.Helper()
	carol := newSyncNode(t, "carol", bin, relayURL, key)
	carol.flags = flags
	carol.once(t)
	for rel, content := range files {
		if !carol.has(rel, content) {
			t.Errorf("a new node of the restored relay lacks %s or has other content", rel)
		}
	}
}

// onlyRepository drops the objects that are not part of a repository.
func onlyRepository(m map[string]string) map[string]string {
	out := make(map[string]string)
	for k, v := range m {
		if backup.InRepository(k) {
			out[k] = v
		}
	}
	return out
}

func sameMaps(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s:\n%v\nwant\n%v", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// A repository made by two nodes is backed up, restored onto a new relay,
// and a new node of the restored relay gets every file.
func TestBackupRestoreFile(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relayDir := t.TempDir()
	src := "file://" + relayDir
	files := twoNodeRepo(t, bin, src, key)
	before := relayObjects(t, src, relay.Options{})

	archive := filepath.Join(t.TempDir(), "repo.tar.gz")
	out, errOut, code := run(t, "backup", "--relay", src, archive)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	want := onlyRepository(before)
	for _, w := range []string{"backed up repository " + relayConfig(t, relayDir).Repository.String(), " objects", " bytes in ", " s to " + archive} {
		if !strings.Contains(errOut, w) {
			t.Errorf("backup output lacks %q:\n%s", w, errOut)
		}
	}

	dst := "file://" + t.TempDir()
	out, errOut, code = run(t, "restore", "--relay", dst, archive)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "restored repository") {
		t.Errorf("restore output lacks its summary:\n%s", errOut)
	}
	sameMaps(t, "restored relay", relayObjects(t, dst, relay.Options{}), want)
	freshNodeGets(t, bin, dst, key, files)

	// Again into the restored relay: refused without --force, and with it
	// every object is already there.
	_, errOut, code = run(t, "restore", "--relay", dst, archive)
	if code == 0 || !strings.Contains(errOut, "already holds") || !strings.Contains(errOut, "--force") {
		t.Errorf("restore into a relay holding the repository: exit %d\n%s", code, errOut)
	}
	wiped := t.TempDir()
	_, errOut, code = run(t, "restore", "--relay", "file://"+wiped, archive)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, errOut)
	}
	if err := os.RemoveAll(filepath.Join(wiped, "blobs")); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run(t, "restore", "--force", "--relay", "file://"+wiped, archive)
	if code != 0 || !strings.Contains(errOut, "already present, skipped") {
		t.Errorf("restore --force into a relay that lost its blobs: exit %d\n%s", code, errOut)
	}
	sameMaps(t, "relay restored with --force", relayObjects(t, "file://"+wiped, relay.Options{}), want)

	// Into another repository: refused, with or without --force.
	other := "file://" + t.TempDir()
	twoNodeRepo(t, bin, other, key)
	otherBefore := relayObjects(t, other, relay.Options{})
	for _, force := range []bool{false, true} {
		args := []string{"restore", "--relay", other, archive}
		if force {
			args = append(args, "--force")
		}
		_, errOut, code := run(t, args...)
		if code == 0 || !strings.Contains(errOut, "different repository") {
			t.Errorf("restore into another repository (--force %v): exit %d\n%s", force, code, errOut)
		}
	}
	sameMaps(t, "the other repository's relay", relayObjects(t, other, relay.Options{}), otherBefore)
}

// readTar returns an archive's entries in order.
func readTar(t *testing.T, data []byte) (names []string, contents map[string][]byte) {
	t.Helper()
	contents = make(map[string][]byte)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, contents
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		contents[hdr.Name] = b
	}
}

// writeTar writes entries in order.
func writeTar(t *testing.T, names []string, contents map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(contents[n])), Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		tw.Write(contents[n])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A damaged archive changes nothing on the relay and says what is wrong.
func TestRestoreDamaged(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	src := "file://" + t.TempDir()
	twoNodeRepo(t, bin, src, key)
	out, errOut, code := run(t, "backup", "--relay", src, "-")
	if code != 0 {
		t.Fatalf("backup to stdout: exit %d\n%s", code, errOut)
	}
	good := []byte(out)
	names, contents := readTar(t, good)
	if names[len(names)-1] != backup.ManifestName {
		t.Fatalf("last entry %q, want the manifest", names[len(names)-1])
	}
	var blob string
	for _, n := range names {
		if strings.HasPrefix(n, "blobs/") && len(contents[n]) > 100 {
			blob = n
		}
	}
	if blob == "" {
		t.Fatalf("no blob in %v", names)
	}

	flipped := bytes.Clone(good)
	flipped[bytes.Index(good, contents[blob][:64])+50] ^= 1

	var man map[string]any
	if err := json.Unmarshal(contents[backup.ManifestName], &man); err != nil {
		t.Fatal(err)
	}
	for _, e := range man["entries"].([]any) {
		if e := e.(map[string]any); e["name"] == blob {
			e["size"] = e["size"].(float64) + 1
		}
	}
	edited := maps.Clone(contents)
	edited[backup.ManifestName], _ = json.Marshal(man)
	mismatch := writeTar(t, names, edited)

	evil := maps.Clone(contents)
	evil["blobs/../../escape"] = []byte("x")
	dotdot := writeTar(t, slices.Insert(slices.Clone(names), 1, "blobs/../../escape"), evil)

	targetDir := t.TempDir()
	target := "file://" + targetDir
	put := func(name, data string) {
		r, err := all.Open(context.Background(), target, relay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := r.Put(context.Background(), name, relay.BytesPayload([]byte(data))); err != nil {
			t.Fatal(err)
		}
	}
	put("notes/keep.txt", "not a repository's")
	before := relayObjects(t, target, relay.Options{})

	for _, tc := range []struct {
		name    string
		archive []byte
		want    []string
	}{
		{"flipped byte", flipped, []string{blob, "SHA-256", "expected (manifest), got"}},
		{"truncated", good[:len(good)/2], []string{"truncated"}},
		{"manifest mismatch", mismatch, []string{blob, "bytes expected (manifest), got"}},
		{"dot-dot entry", dotdot, []string{"blobs/../../escape", ". or .. component"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "bad.tar")
			if err := os.WriteFile(archive, tc.archive, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{archive}, {"--force", archive}} {
				_, errOut, code := run(t, append([]string{"restore", "--relay", target}, args...)...)
				if code == 0 {
					t.Fatalf("restore %v: succeeded", args)
				}
				for _, w := range append(tc.want, "the archive is corrupt", "nothing was written to the relay") {
					if !strings.Contains(errOut, w) {
						t.Errorf("restore %v: the error does not say %q:\n%s", args, w, errOut)
					}
				}
			}
			_, errOut, code := runIn(t, bytes.NewReader(tc.archive), "restore", "--relay", target, "--temp-dir", t.TempDir(), "-")
			if code == 0 || !strings.Contains(errOut, "nothing was written") {
				t.Errorf("restore from stdin: exit %d\n%s", code, errOut)
			}
			sameMaps(t, "the relay after a failed restore", relayObjects(t, target, relay.Options{}), before)
			if _, err := os.Stat(filepath.Join(filepath.Dir(targetDir), "escape")); err == nil {
				t.Error("an entry escaped the relay directory")
			}
		})
	}
}

// Over a real WebDAV server, through a pipe: backup to standard output,
// restore from standard input onto a new collection.
func TestBackupRestoreWebDAV(t *testing.T) {
	s := testserver.StartApache(t, testserver.DAVOptions{})
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	pw := writeFile(t, filepath.Join(t.TempDir(), "pw"), []byte(s.Password+"\n"), 0o600)
	newURL := func() string {
		raw, _ := s.Subdir(t)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.User(s.User)
		return u.String()
	}
	opts := relay.Options{Password: s.Password}
	flags := []string{"--password-file", pw}
	src, dst := newURL(), newURL()
	files := twoNodeRepo(t, bin, src, key, flags...)
	want := onlyRepository(relayObjects(t, src, opts))

	out, errOut, code := run(t, "backup", "--relay", src, "--password-file", pw, "-")
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, errOut)
	}
	_, errOut, code = runIn(t, strings.NewReader(out), "restore", "--relay", dst, "--password-file", pw, "--temp-dir", t.TempDir(), "-")
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", code, errOut, s.ErrorLog())
	}
	sameMaps(t, "restored collection", relayObjects(t, dst, opts), want)
	freshNodeGets(t, bin, dst, key, files, flags...)
}
