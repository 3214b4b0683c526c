package throttle_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	gosync "sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/pseudo"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/relay/relaytest"
	"github.com/escalefs/escalefs/relay/throttle"
)

// meter is a Limiter that lets everything through at once and records
// what passed.
type meter struct {
	mu      gosync.Mutex
	burst   int
	total   int64
	largest int
	fail    error
}

func (m *meter) WaitN(ctx context.Context, n int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if n > m.burst {
		return errors.New("more than the burst at once")
	}
	m.total += int64(n)
	m.largest = max(m.largest, n)
	return ctx.Err()
}

func (m *meter) Burst() int { return m.burst }

func TestConformance(t *testing.T) {
	relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
		return relaytest.FileFixture(t, func(r relay.Relay) relay.Relay {
			return throttle.New(r, &meter{burst: 4096}, &meter{burst: 4096})
		})
	}})
}

// TestEveryByteWaits: each byte a Put sends and a Get receives passes
// through its limiter, a burst at most at a time; listings do not.
func TestEveryByteWaits(t *testing.T) {
	inner, err := file.New(t.Context(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	up, down := &meter{burst: 1000}, &meter{burst: 3000}
	r := throttle.New(inner, up, down)
	data := pseudo.Bytes("throttle", 1<<20+17)
	if err := r.Put(t.Context(), "blob", relay.BytesPayload(data)); err != nil {
		t.Fatal(err)
	}
	if up.total != int64(len(data)) || up.largest > 1000 || down.total != 0 {
		t.Errorf("a Put of %d bytes: %d sent through the limiter, %d at most at once, %d received", len(data), up.total, up.largest, down.total)
	}
	var got []byte
	if err := r.Get(t.Context(), "blob", 10, -1, func(rd io.Reader) error {
		got, err = io.ReadAll(rd)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[10:]) {
		t.Fatal("read back other bytes")
	}
	if down.total != int64(len(data)-10) || down.largest > 3000 {
		t.Errorf("a Get of %d bytes: %d through the limiter, %d at most at once", len(data)-10, down.total, down.largest)
	}
	before := down.total + up.total
	if err := r.List(t.Context(), "", func(relay.ObjectInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if down.total+up.total != before {
		t.Error("a listing was counted")
	}
}

// TestLimiterErrorEndsTransfer: a wait that fails (the context ended)
// fails the transfer with its error, and nothing partial is left.
func TestLimiterErrorEndsTransfer(t *testing.T) {
	inner, err := file.New(t.Context(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	r := throttle.New(inner, &meter{burst: 1000, fail: context.Canceled}, nil)
	err = r.Put(t.Context(), "blob", relay.BytesPayload(make([]byte, 5000)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put through a failing limiter: %v, want context.Canceled", err)
	}
	if _, err := inner.Stat(t.Context(), "blob"); err == nil {
		t.Error("a Put cut short left its object")
	}
}

// TestNewRate: past its first burst, a limit of 100 bytes per second
// cannot send 200 kB within a minute, and says so at once; no limit lets
// it through.
func TestNewRate(t *testing.T) {
	inner, err := file.New(t.Context(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	if throttle.NewRate(0) != nil || throttle.NewRate(-5) != nil {
		t.Error("a rate of 0 or less limits")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	data := make([]byte, 200_000)
	if err := throttle.New(inner, throttle.NewRate(100), nil).Put(ctx, "slow", relay.BytesPayload(data)); err == nil {
		t.Error("200 kB went within a minute at 100 bytes per second")
	}
	if err := throttle.New(inner, throttle.NewRate(0), throttle.NewRate(0)).Put(ctx, "free", relay.BytesPayload(data)); err != nil {
		t.Errorf("without a limit: %v", err)
	}
}
