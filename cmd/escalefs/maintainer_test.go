package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/testserver"
)

// smtpMessage is what the fake SMTP server received in one session.
type smtpMessage struct {
	from, to string
	data     string
}

// fakeSMTP starts an SMTP server on 127.0.0.1 that speaks just enough of
// the protocol for net/smtp, points smtpAddr at it for the test, and
// returns the messages it receives.
func fakeSMTP(t *testing.T) <-chan smtpMessage {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	useSMTP(t, ln.Addr().String())
	msgs := make(chan smtpMessage, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSMTP(conn, msgs)
		}
	}()
	return msgs
}

func serveSMTP(conn net.Conn, msgs chan<- smtpMessage) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	reply := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
	reply("220 fake.test ESMTP")
	var m smtpMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			reply("250 fake.test")
		case "MAIL":
			m.from = strings.TrimPrefix(line, "MAIL FROM:")
			reply("250 ok")
		case "RCPT":
			m.to = strings.TrimPrefix(line, "RCPT TO:")
			reply("250 ok")
		case "DATA":
			reply("354 end with .")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			m.data = data.String()
			reply("250 queued")
			msgs <- m
		case "QUIT":
			reply("221 bye")
			return
		case "RSET", "NOOP":
			reply("250 ok")
		default:
			reply("502 not implemented")
		}
	}
}

// useSMTP points smtpAddr at addr for the test.
func useSMTP(t *testing.T, addr string) {
	old := smtpAddr
	smtpAddr = addr
	t.Cleanup(func() { smtpAddr = old })
}

// refusedAddr returns an address on 127.0.0.1 where nothing listens.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func testNode(t *testing.T, maintainer string) (*node, *bytes.Buffer) {
	var log bytes.Buffer
	g := &globals{stdout: &bytes.Buffer{}, stderr: &log}
	return &node{
		g: g, f: &syncFlags{maintainer: maintainer, command: "mount"},
		log:  slog.New(slog.NewTextHandler(&log, nil)),
		loc:  "ftps://me@ftp.example.org/sync",
		name: "laptöp", state: t.TempDir(),
	}, &log
}

func TestMaintainerNotice(t *testing.T) {
	msgs := fakeSMTP(t)
	n, log := testNode(t, "admin@example.org")
	stop := errors.New("cache is corrupt; remove the state directory\nand sync again")
	if err := n.stopped("/home/me/Sync", stop); err != stop {
		t.Errorf("stopped returned %v, want its error", err)
	}
	var m smtpMessage
	select {
	case m = <-msgs:
	default:
		t.Fatalf("no message reached the SMTP server; log:\n%s", log)
	}
	host, _ := os.Hostname()
	if m.from != "<escalefs@"+host+">" || m.to != "<admin@example.org>" {
		t.Errorf("MAIL FROM %s, RCPT TO %s", m.from, m.to)
	}
	for _, want := range []string{
		"From: escalefs@" + host + "\r\n",
		"To: admin@example.org\r\n",
		"Subject: =?utf-8?q?escalefs:_node_lapt=C3=B6p_stopped?=\r\n",
		"\r\n    cache is corrupt; remove the state directory\r\n    and sync again\r\n",
		"Relay:      ftps://me@ftp.example.org/sync\r\n",
		"Mountpoint: /home/me/Sync\r\n",
		"State dir:  " + n.state + "\r\n",
		"Time:       " + time.Now().Format("2006-01-02T"),
	} {
		if !strings.Contains(m.data, want) {
			t.Errorf("the message lacks %q:\n%s", want, m.data)
		}
	}
	if !strings.Contains(log.String(), "level=INFO msg=\"told the maintainer\" to=admin@example.org") {
		t.Errorf("the log does not say the maintainer was told:\n%s", log)
	}

	// The same error again, as from a service restarted on failure, is not
	// sent again.
	log.Reset()
	_ = n.stopped("/home/me/Sync", stop)
	select {
	case m := <-msgs:
		t.Errorf("the same error was sent twice:\n%s", m.data)
	default:
	}
	if !strings.Contains(log.String(), "msg=\"the maintainer was told of this error already\"") {
		t.Errorf("the log does not say why the maintainer is not told again:\n%s", log)
	}
}

func TestMaintainerNoSMTPServer(t *testing.T) {
	addr := refusedAddr(t)
	useSMTP(t, addr)
	n, log := testNode(t, "admin@example.org")
	stop := errors.New("repository changed")
	if err := n.stopped("/home/me/Sync", stop); err != stop {
		t.Errorf("stopped returned %v, want its error", err)
	}
	want := `level=WARN msg="could not tell the maintainer: no SMTP server on ` + addr + `" to=admin@example.org err=`
	if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), "connection refused") {
		t.Errorf("log:\n%s\nwant a warning %q…connection refused", log, want)
	}
	if _, err := os.Stat(filepath.Join(n.state, maintainerSentName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s records a notice that was not sent: %v", maintainerSentName, err)
	}
}

func TestMaintainerFlag(t *testing.T) {
	_, errOut, code := run(t, "sync", "--maintainer", "not an address", "--relay", "file:///nonexistent", "--no-encryption", t.TempDir())
	if code == 0 || !strings.Contains(errOut, `invalid argument "not an address" for "--maintainer" flag: expected an email address`) {
		t.Errorf("sync --maintainer 'not an address': exit %d, %s", code, errOut)
	}
	n, log := testNode(t, "")
	useSMTP(t, refusedAddr(t))
	_ = n.stopped("/home/me/Sync", errors.New("repository changed"))
	if log.Len() != 0 {
		t.Errorf("without --maintainer, the node logged:\n%s", log)
	}
}

// A sync that stops because the repository on the relay is gone tells the
// maintainer.
func TestSyncStopTellsMaintainer(t *testing.T) {
	msgs := fakeSMTP(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	relayDir, dir := t.TempDir(), t.TempDir()
	var stderr testserver.SyncBuffer
	cmd := newRootCmd(&bytes.Buffer{}, &stderr)
	cmd.SetArgs([]string{"sync", "--relay", "file://" + relayDir, "--no-encryption", "--name", "alice",
		"--refresh", "100ms", "--maintainer", "admin@example.org", dir})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	waitFor(t, 30*time.Second, "the node to start syncing", func() bool {
		return strings.Contains(stderr.String(), "level=INFO msg=syncing")
	})
	if err := os.Remove(filepath.Join(relayDir, "escale.json")); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("sync did not stop within 30s of the repository's removal:\n%s", stderr.String())
	}
	if err == nil || !strings.Contains(err.Error(), "repository changed") {
		t.Fatalf("sync stopped with %v, want the repository changed\n%s", err, stderr.String())
	}
	select {
	case m := <-msgs:
		for _, want := range []string{"Subject: escalefs: node alice stopped", err.Error(), "Relay:      file://" + relayDir,
			"Folder:     " + resolvePath(dir), "Command:    escalefs sync"} {
			if !strings.Contains(m.data, want) {
				t.Errorf("the message lacks %q:\n%s", want, m.data)
			}
		}
	default:
		t.Fatalf("the maintainer was not told; log:\n%s", stderr.String())
	}
}
