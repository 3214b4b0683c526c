package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/relay/relaytest"
	"github.com/escalefs/escalefs/relay/retry"
)

func newFile(t *testing.T) (*file.Relay, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := file.New(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// The whole conformance suite passes over a relay that fails every few
// calls and cuts transfers midway, once the retry wrapper is on top.
func TestConformanceOverFaults(t *testing.T) {
	for _, fc := range []relaytest.FaultConfig{
		{FailEvery: 3},
		{FailEvery: 5, CutEvery: 2, CutAfter: 1000},
		{CutEvery: 2, CutAfter: 64 << 10}, // every other transfer breaks after 64 KiB
	} {
		t.Run(fmt.Sprintf("fail%d-cut%d", fc.FailEvery, fc.CutEvery), func(t *testing.T) {
			var injected int64
			relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
				return relaytest.FileFixture(t, func(inner relay.Relay) relay.Relay {
					faulty := relaytest.NewFaulty(inner, fc)
					t.Cleanup(func() { injected += faulty.Injected.Load() })
					return retry.New(faulty, retry.Config{Initial: time.Microsecond, Max: time.Millisecond, Attempts: 20})
				})
			}})
			if injected == 0 {
				t.Errorf("no fault was injected: the test proves nothing")
			}
			t.Logf("%d faults injected", injected)
		})
	}
}

func TestCutEveryTransferNeedsRetry(t *testing.T) {
	inner, _ := newFile(t)
	relaytest.MustPut(t, inner, "x", relaytest.RandomBytes(100_000))
	faulty := relaytest.NewFaulty(inner, relaytest.FaultConfig{CutEvery: 1, CutAfter: 10})
	// Without retry, every transfer breaks.
	if _, err := relaytest.ReadAll(context.Background(), faulty, "x", 0, -1); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("cut transfer without retry: %v, want ECONNRESET", err)
	}
	// With retry but every attempt cut, it gives up after Attempts.
	var waits []time.Duration
	r := retry.New(faulty, retry.Config{Attempts: 4, Sleep: func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}})
	if _, err := relaytest.ReadAll(context.Background(), r, "x", 0, -1); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("always-cut transfer with retry: %v, want ECONNRESET after giving up", err)
	}
	if len(waits) != 3 {
		t.Errorf("waited %d times, want 3 (4 attempts)", len(waits))
	}
}

// counting fails its first n calls with err.
type counting struct {
	relay.Relay
	n     int
	err   error
	calls int
}

func (c *counting) Stat(ctx context.Context, name string) (relay.ObjectInfo, error) {
	c.calls++
	if c.calls <= c.n {
		return relay.ObjectInfo{}, c.err
	}
	return c.Relay.Stat(ctx, name)
}

func TestBackoff(t *testing.T) {
	inner, _ := newFile(t)
	relaytest.MustPut(t, inner, "x", []byte("x"))
	c := &counting{Relay: inner, n: 7, err: syscall.ECONNRESET}
	var waits []time.Duration
	r := retry.New(c, retry.Config{Initial: 100 * time.Millisecond, Max: time.Second, Attempts: 10,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	if _, err := r.Stat(context.Background(), "x"); err != nil {
		t.Fatalf("stat after 7 transient failures: %v", err)
	}
	if c.calls != 8 || len(waits) != 7 {
		t.Fatalf("calls %d, waits %d; want 8 and 7", c.calls, len(waits))
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, w := range waits {
		hi := want[i] * time.Millisecond
		if w > hi || w < hi*8/10 {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, w, hi*8/10, hi)
		}
	}
}

func TestPermanentNotRetried(t *testing.T) {
	inner, _ := newFile(t)
	for _, err := range []error{fs.ErrNotExist, fs.ErrPermission, relay.ErrAuth, relay.ErrQuota,
		relay.ErrTLS, relay.Permanent(errors.New("odd server answer"))} {
		c := &counting{Relay: inner, n: 100, err: err}
		r := retry.New(c, retry.Config{Sleep: func(context.Context, time.Duration) error {
			t.Fatalf("slept before retrying a permanent error %v", err)
			return nil
		}})
		if _, got := r.Stat(context.Background(), "x"); !errors.Is(got, err) || c.calls != 1 {
			t.Errorf("permanent %v: got %v after %d calls, want it after 1", err, got, c.calls)
		}
	}
}

func TestHonoursContext(t *testing.T) {
	inner, _ := newFile(t)
	c := &counting{Relay: inner, n: 100, err: syscall.ECONNRESET}
	ctx, cancel := context.WithCancel(context.Background())
	r := retry.New(c, retry.Config{Initial: time.Hour, Max: time.Hour})
	done := make(chan error)
	go func() { _, err := r.Stat(ctx, "x"); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("stat cancelled while waiting: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("retry kept waiting after the context was cancelled")
	}
}

func TestFailingPayloadNotRetried(t *testing.T) {
	inner, _ := newFile(t)
	r := retry.New(inner, retry.Config{Sleep: func(context.Context, time.Duration) error {
		t.Fatal("retried a put whose payload source failed")
		return nil
	}})
	err := r.Put(context.Background(), "x", &badPayload{})
	if !errors.Is(err, errSource) {
		t.Errorf("put of a failing payload: %v, want the payload's error", err)
	}
}

var errSource = errors.New("disk read error")

type badPayload struct{}

func (badPayload) Read([]byte) (int, error) { return 0, errSource }
func (badPayload) Length() int64            { return 10 }
func (badPayload) Rewind() error            { return nil }

func TestCallbackErrorNotRetried(t *testing.T) {
	inner, _ := newFile(t)
	relaytest.MustPut(t, inner, "x", []byte("data"))
	r := retry.New(inner, retry.Config{})
	mine := errors.New("consumer failed")
	calls := 0
	err := r.Get(context.Background(), "x", 0, -1, func(io.Reader) error { calls++; return mine })
	if err != mine || calls != 1 {
		t.Errorf("get whose callback fails: %v after %d calls, want the callback's error after 1", err, calls)
	}
}
