package logging_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/file"
	"github.com/escalefs/escalefs/relay/logging"
	"github.com/escalefs/escalefs/relay/relaytest"
)

func TestConformance(t *testing.T) {
	relaytest.Run(t, relaytest.Config{New: func(t *testing.T) relaytest.Fixture {
		log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		return relaytest.FileFixture(t, func(r relay.Relay) relay.Relay { return logging.New(r, log) })
	}})
}

func TestLogsEachCall(t *testing.T) {
	inner, err := file.New(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	r := logging.New(inner, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	relaytest.MustPut(t, r, "a/b", []byte("12345"))
	relaytest.MustGet(t, r, "a/b")
	r.Delete(context.Background(), "a/b")
	r.Stat(context.Background(), "a/b")
	out := buf.String()
	for _, want := range []string{"op=put name=a/b", "size=5", "op=get", "read=5", "op=delete", "op=stat", "err="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("%d log lines for 4 calls:\n%s", n, out)
	}
}
