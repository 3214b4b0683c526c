package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

// escalefsAs runs the escalefs binary with $XDG_STATE_HOME state and
// returns its standard error and exit status.
func escalefsAs(t *testing.T, bin, state string, args ...string) (string, int) {
	t.Helper()
	_, stderr, code := runBin(t, bin, state, args...)
	return stderr, code
}

func relayHas(t *testing.T, rawURL, name string, opts relay.Options) bool {
	t.Helper()
	r, err := all.Open(t.Context(), rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Stat(t.Context(), name)
	return err == nil
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

// Two nodes sync through relay A; node 1, with a change queued, runs from a
// configuration file and migrates to relay B; node 2, still told relay A,
// follows at its next sync; a file written on node 2 then reaches node 1
// through B.
func TestMigrateFileRelays(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relayA, relayB := t.TempDir(), filepath.Join(t.TempDir(), "b")
	urlA, urlB := "file://"+relayA, "file://"+relayB
	n1 := newSyncNode(t, "one", bin, urlA, key)
	n2 := newSyncNode(t, "two", bin, urlA, key)

	n1.write(t, "a.txt", "alpha")
	n1.once(t)
	n2.once(t)
	if !n2.has("a.txt", "alpha") {
		t.Fatal("a.txt did not reach node 2 through A")
	}

	// Node 1 runs from a configuration table.
	cfgPath := writeFile(t, filepath.Join(t.TempDir(), "config.toml"), []byte(
		"# my repositories\n[one]\nrelay = \""+urlA+"\"  # the NAS\npath = \""+n1.dir+"\"\nkey-file = \""+key+"\"\n"), 0o600)
	n1.write(t, "queued.txt", "pushed before the move")
	n1.write(t, "big.bin", strings.Repeat("0123456789", 300_000))

	// An unreachable destination changes nothing.
	notDir := writeFile(t, filepath.Join(t.TempDir(), "plain-file"), []byte("x"), 0o600)
	stderr, code := escalefsAs(t, bin, n1.state, "--config", cfgPath, "migrate", "--to", "file://"+notDir+"/relay")
	if code == 0 {
		t.Fatalf("migrate to an unreachable relay succeeded:\n%s", stderr)
	}
	mustContain(t, "error", stderr, "nothing was changed")
	if relayHas(t, urlA, layout.MovedName, relay.Options{}) {
		t.Fatal("a marker was written on A for an unreachable destination")
	}
	if data, _ := os.ReadFile(cfgPath); !strings.Contains(string(data), urlA) {
		t.Fatalf("the configuration changed:\n%s", data)
	}

	// A destination holding another repository is refused.
	otherURL, _ := newTestRepo(t, crypto.GenerateKey(), crypto.EncryptionAge)
	stderr, code = escalefsAs(t, bin, n1.state, "--config", cfgPath, "migrate", "--to", otherURL)
	if code == 0 {
		t.Fatalf("migrate onto another repository succeeded:\n%s", stderr)
	}
	mustContain(t, "error", stderr, "holds another repository", "nothing was changed")
	if relayHas(t, urlA, layout.MovedName, relay.Options{}) {
		t.Fatal("a marker was written on A for a destination holding another repository")
	}

	stderr, code = escalefsAs(t, bin, n1.state, "--config", cfgPath, "migrate", "--to", urlB)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	mustContain(t, "migrate output", stderr, "moved repository", "updated "+cfgPath, "relay = \""+urlB+"\"")
	data, _ := os.ReadFile(cfgPath)
	if !strings.Contains(string(data), "relay = \""+urlB+"\"  # the NAS\n") || !strings.Contains(string(data), "# my repositories") {
		t.Fatalf("configuration after migrate:\n%s", data)
	}
	if !relayHas(t, urlA, layout.MovedName, relay.Options{}) {
		t.Fatal("no marker on A")
	}

	// Node 2, still given A, follows the marker.
	stderr = n2.once(t)
	mustContain(t, "node 2's log", stderr, "the repository moved to "+urlB, "following the repository to "+urlB)
	if !n2.has("queued.txt", "pushed before the move") || !n2.has("big.bin", strings.Repeat("0123456789", 300_000)) {
		t.Fatal("node 1's queued files did not reach node 2")
	}
	n2.write(t, "from-two.txt", "after the move")
	n2.once(t) // through A's marker again, to B

	// Node 1 runs from its updated configuration: B.
	stderr, code = escalefsAs(t, bin, n1.state, "--config", cfgPath, "sync", "--once")
	if code != 0 {
		t.Fatalf("node 1 on B: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "moved to") {
		t.Errorf("node 1 went through A:\n%s", stderr)
	}
	if !n1.has("from-two.txt", "after the move") {
		t.Fatal("node 2's file did not reach node 1 through B")
	}
	// Node 2 now told B directly: every file intact on both.
	n2.relay = urlB
	n2.once(t)
	for _, f := range []string{"a.txt", "queued.txt", "big.bin", "from-two.txt"} {
		a, err1 := os.ReadFile(n1.path(f))
		b, err2 := os.ReadFile(n2.path(f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the nodes (%v, %v)", f, err1, err2)
		}
	}
	// Nothing new on A since the move but what node 2 wrote before it
	// followed: A is no longer written.
	if relayHas(t, urlB, layout.MovedName, relay.Options{}) {
		t.Error("B holds a marker")
	}
}

// A marker on A that was not sealed with the repository's keys is
// reported and not followed; the node keeps syncing through A.
func TestMigrateForgedMarker(t *testing.T) {
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	relayA, elsewhere := t.TempDir(), t.TempDir()
	urlA := "file://" + relayA
	n1 := newSyncNode(t, "one", bin, urlA, key)
	n2 := newSyncNode(t, "two", bin, urlA, key)
	n1.write(t, "a.txt", "alpha")
	n1.once(t)
	n2.once(t)

	// The relay forges a marker: it has no key, so it seals with another
	// repository's (or none).
	other, err := escsync.OpenRepository(t.Context(), fileRelayAt(t, t.TempDir()), crypto.GenerateKey(),
		escsync.RepoOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := escsync.SealMoved(other, escsync.Moved{URL: "file://" + elsewhere, Time: time.Now(), Node: crypto.NewNodeID()})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(relayA, layout.MovedName), forged, 0o600)

	n1.write(t, "b.txt", "beta")
	stderr, _ := escalefsAs(t, bin, n1.state, "sync", "--once", "--relay", urlA, "--key-file", key, "--name", "one", n1.dir)
	mustContain(t, "node 1's log", stderr, "moved marker", "not valid", "not followed")
	stderr, _ = escalefsAs(t, bin, n2.state, "sync", "--once", "--relay", urlA, "--key-file", key, "--name", "two", n2.dir)
	mustContain(t, "node 2's log", stderr, "not followed")
	if strings.Contains(stderr, "following the repository") {
		t.Fatalf("node 2 followed a forged marker:\n%s", stderr)
	}
	if !n2.has("b.txt", "beta") {
		t.Fatal("syncing through A stopped over a forged marker")
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Fatalf("the forged destination was written: %v", ents)
	}
}

func fileRelayAt(t *testing.T, dir string) relay.Relay {
	t.Helper()
	r, err := all.Open(t.Context(), "file://"+dir, relay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// To a real WebDAV server that needs a password node 2 does not have: node
// 2, running escalefs sync, sees the marker and stops with an error that
// names the new relay and what to change; restarted so, it gets node 1's
// files through the server, and its own reach node 1.
func TestMigrateWebDAV(t *testing.T) {
	s := testserver.StartApache(t, testserver.DAVOptions{})
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	pw := writeFile(t, filepath.Join(t.TempDir(), "pw"), []byte(s.Password+"\n"), 0o600)
	raw, _ := s.Subdir(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(s.User)
	urlB := u.String()
	urlA := "file://" + t.TempDir()
	n1 := newSyncNode(t, "one", bin, urlA, key)
	n2 := newSyncNode(t, "two", bin, urlA, key)
	n2.flags = []string{"--refresh", "200ms"}
	n1.write(t, "a.txt", "alpha")
	n1.once(t)

	// Node 2 runs.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	run2 := n2.command(ctx)
	var log2 testserver.SyncBuffer
	run2.Stderr = &log2
	if err := run2.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "a.txt on node 2", func() bool { return n2.has("a.txt", "alpha") })

	n1.write(t, "queued.txt", "queued on node 1")
	stderr, code := escalefsAs(t, bin, n1.state, "migrate", "--relay", urlA, "--key-file", key, "--name", "one",
		"--to", urlB, "--to-password-file", pw, n1.dir)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, stderr, s.ErrorLog())
	}
	mustContain(t, "migrate output", stderr, "from now on, sync this folder with --relay "+urlB)

	// Node 2 cannot log in to B: it stops, saying what to do.
	err = run2.Wait()
	if err == nil {
		t.Fatalf("node 2 did not stop:\n%s", log2.String())
	}
	mustContain(t, "node 2's error", log2.String(), "the repository moved to "+urlB, "could not open the new relay",
		"--relay "+urlB, "--password-file", "queue stays in")

	n2.relay = urlB
	n2.flags = []string{"--password-file", pw}
	n2.once(t)
	if !n2.has("queued.txt", "queued on node 1") {
		t.Fatal("node 1's queued file did not reach node 2 through B")
	}
	n2.write(t, "from-two.txt", "through WebDAV")
	n2.once(t)
	n1.relay = urlB
	n1.flags = []string{"--password-file", pw}
	n1.once(t)
	if !n1.has("from-two.txt", "through WebDAV") || !n1.has("a.txt", "alpha") {
		t.Fatal("node 2's file did not reach node 1 through B")
	}
}

// A relay outgrows its account and moves to an S3 store: the migrating
// node's table gains the store's endpoint and region, and the marker
// carries them, so a node told nothing of the store follows it with its
// own credentials.
func TestMigrateToS3(t *testing.T) {
	srv := testserver.StartSeaweedFS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_REGION", "")
	bin := buildEscalefs(t)
	key, _ := keyFile(t)
	urlA, urlB := "file://"+t.TempDir(), srv.URL(srv.NewPrefix(t))
	n1 := newSyncNode(t, "one", bin, urlA, key)
	n2 := newSyncNode(t, "two", bin, urlA, key)
	n1.write(t, "a.txt", "alpha")
	n1.once(t)
	n2.once(t)
	cfgPath := writeFile(t, filepath.Join(t.TempDir(), "config.toml"), []byte(
		"[one]\nrelay = \""+urlA+"\"\npath = \""+n1.dir+"\"\nkey-file = \""+key+"\"\n"), 0o600)
	n1.write(t, "queued.txt", "pushed before the move")

	stderr, code := escalefsAs(t, bin, n1.state, "--config", cfgPath, "migrate", "--to", urlB,
		"--to-s3-endpoint", srv.Endpoint, "--to-s3-region", srv.Region)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	mustContain(t, "migrate output", stderr, "moved repository", "updated "+cfgPath)
	data, _ := os.ReadFile(cfgPath)
	mustContain(t, "the configuration after migrate", string(data), "relay = \""+urlB+"\"\n",
		"s3-endpoint = \""+srv.Endpoint+"\"\n", "s3-region = \""+srv.Region+"\"\n")

	// Node 2, given A and no endpoint, follows to the store the marker names.
	stderr = n2.once(t)
	mustContain(t, "node 2's log", stderr, "following the repository to "+urlB, "--s3-endpoint "+srv.Endpoint)
	if !n2.has("queued.txt", "pushed before the move") {
		t.Fatal("node 1's queued file did not reach node 2 through the S3 store")
	}
	n2.write(t, "from-two.txt", "after the move")
	n2.once(t)

	// Node 1 runs from its updated table, on the store directly.
	stderr, code = escalefsAs(t, bin, n1.state, "--config", cfgPath, "sync", "--once")
	if code != 0 {
		t.Fatalf("node 1 on the S3 store: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "moved to") {
		t.Errorf("node 1 went through A:\n%s", stderr)
	}
	if !n1.has("from-two.txt", "after the move") {
		t.Fatal("node 2's file did not reach node 1 through the S3 store")
	}
}
