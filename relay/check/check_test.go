package check_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/check"
	"github.com/escalefs/escalefs/relay/file"
)

func TestRunWorkingRelay(t *testing.T) {
	dir := t.TempDir()
	var steps []string
	err := check.Run(context.Background(), func(ctx context.Context) (relay.Relay, error) {
		return file.New(ctx, dir, nil)
	}, func(s check.Step) {
		if s.Err != nil {
			t.Errorf("step %s failed: %v", s.Name, s.Err)
		}
		steps = append(steps, s.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "connect put list get get range rename delete quota"
	if got := strings.Join(steps, " "); got != want {
		t.Errorf("steps = %q, want %q", got, want)
	}
	if left := testserver.ListFiles(t, dir); len(left) != 0 {
		t.Errorf("check left objects behind: %q", left)
	}
}

// broken fails one operation with a given error.
type broken struct {
	relay.Relay
	op  string
	err error
}

func (b *broken) Put(ctx context.Context, n string, p relay.Payload) error {
	if b.op == "put" {
		return relay.WrapOp("put", n, b.err)
	}
	return b.Relay.Put(ctx, n, p)
}

func (b *broken) Get(ctx context.Context, n string, off, l int64, fn func(io.Reader) error) error {
	if b.op == "get range" && off > 0 {
		// A server that ignores ranges and sends the whole object.
		return b.Relay.Get(ctx, n, 0, -1, fn)
	}
	return b.Relay.Get(ctx, n, off, l, fn)
}

func (b *broken) List(ctx context.Context, dir string, fn func(relay.ObjectInfo) error) error {
	if b.op == "list" {
		return nil // lists nothing: a server hiding files
	}
	return b.Relay.List(ctx, dir, fn)
}

func TestRunFailures(t *testing.T) {
	for _, tc := range []struct {
		op, wantStep, wantCause string
		err                     error
	}{
		{"put", "put", "no permission", fmt.Errorf("553 denied: %w", fs.ErrPermission)},
		{"put", "put", "relay is full", fmt.Errorf("552 exceeded: %w", relay.ErrQuota)},
		{"list", "list", "", nil},
		{"get range", "get range", "", nil},
	} {
		t.Run(tc.op+fmt.Sprint(tc.err), func(t *testing.T) {
			dir := t.TempDir()
			var failed []string
			err := check.Run(context.Background(), func(ctx context.Context) (relay.Relay, error) {
				r, err := file.New(ctx, dir, nil)
				return &broken{Relay: r, op: tc.op, err: tc.err}, err
			}, func(s check.Step) {
				if s.Err != nil {
					failed = append(failed, s.Name)
				}
			})
			var f *check.Failure
			if !errors.As(err, &f) || f.Step != tc.wantStep {
				t.Fatalf("err = %v, want a failure of step %q", err, tc.wantStep)
			}
			if len(failed) != 1 || failed[0] != tc.wantStep {
				t.Errorf("reported failing steps %q, want [%q]", failed, tc.wantStep)
			}
			if cause := check.Diagnose(err); !strings.Contains(cause, tc.wantCause) {
				t.Errorf("diagnosis %q, want it to mention %q", cause, tc.wantCause)
			}
			if left := testserver.ListFiles(t, dir); len(left) != 0 {
				t.Errorf("a failed check left objects behind: %q", left)
			}
		})
	}
}

func TestConnectFailure(t *testing.T) {
	var got []check.Step
	err := check.Run(context.Background(), func(context.Context) (relay.Relay, error) {
		return nil, fmt.Errorf("dial: %w", relay.ErrAuth)
	}, func(s check.Step) { got = append(got, s) })
	if len(got) != 1 || got[0].Name != "connect" || got[0].Err == nil {
		t.Fatalf("steps = %+v, want one failed connect", got)
	}
	if cause := check.Diagnose(err); !strings.Contains(cause, "the login was refused") {
		t.Errorf("diagnosis = %q", cause)
	}
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{relay.ErrTLS, "TLS mismatch"},
		{relay.ErrUnreachable, "host unreachable"},
		{context.DeadlineExceeded, "timed out"},
		{errors.New("something odd"), ""},
	} {
		if got := check.Diagnose(fmt.Errorf("x: %w", tc.err)); !strings.Contains(got, tc.want) || (tc.want == "" && got != "") {
			t.Errorf("Diagnose(%v) = %q, want it to contain %q", tc.err, got, tc.want)
		}
	}
}
