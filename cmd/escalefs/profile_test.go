package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestProfiles: --cpuprofile, --memprofile and --trace write their files
// for any command, once the run stops; a file that cannot be created is
// an error naming the flag.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	root, g := newRoot(&out, &errb)
	cpu, mem, trace := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof"), filepath.Join(dir, "run.trace")
	root.SetArgs([]string{"version", "--cpuprofile", cpu, "--memprofile", mem, "--trace", trace})
	if code := execute(context.Background(), root, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	g.profiles.stop(os.Stderr)
	for _, p := range []string{cpu, mem, trace} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, %v", filepath.Base(p), fi, err)
		}
	}

	root, g = newRoot(&out, &errb)
	errb.Reset()
	root.SetArgs([]string{"version", "--cpuprofile", filepath.Join(dir, "missing", "cpu.prof")})
	if code := execute(context.Background(), root, &errb); code == 0 || !bytes.Contains(errb.Bytes(), []byte("--cpuprofile")) {
		t.Errorf("a profile in a missing directory: exit %d, %q", code, errb.String())
	}
	g.profiles.stop(os.Stderr)
}
