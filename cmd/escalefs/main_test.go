package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd(&out, &errb)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case err != nil:
		errb.WriteString(err.Error())
		code = 1
	}
	return out.String(), errb.String(), code
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "escalefs ") {
		t.Errorf("version: %q, exit %d", out, code)
	}
}

func TestHelp(t *testing.T) {
	out, _, code := run(t, "--help")
	if code != 0 || !strings.Contains(out, "relay") || !strings.Contains(out, "version") {
		t.Errorf("--help: exit %d, output %q", code, out)
	}
	out, _, code = run(t, "relay", "check", "--help")
	if code != 0 || !strings.Contains(out, "ftps://user@host") {
		t.Errorf("relay check --help: exit %d, output %q", code, out)
	}
}

func TestRelayCheckFile(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := run(t, "relay", "check", "file://"+dir)
	if code != 0 {
		t.Fatalf("relay check of a directory: exit %d\n%s%s", code, out, errOut)
	}
	for _, step := range []string{"connect", "put", "list", "get", "get range", "rename", "delete"} {
		if !strings.Contains(out, "ok   "+step) {
			t.Errorf("output lacks a line for step %q:\n%s", step, out)
		}
	}
	if !strings.Contains(out, "relay works") {
		t.Errorf("output lacks the verdict:\n%s", out)
	}
}

func TestRelayCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relay", "check", "nosuch://host/x"}, `unknown scheme "nosuch"`},
		{[]string{"relay", "check", "file://host/x"}, "has no host"},
		{[]string{"relay", "check"}, "accepts 1 arg"},
		{[]string{"relay", "check", "--timeout", "soon", "file:///x"}, `invalid argument "soon"`},
	} {
		out, errOut, code := run(t, tc.args...)
		if code == 0 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%q: exit %d, output %q, want a failure mentioning %q", tc.args, code, out+errOut, tc.want)
		}
	}
}
