package ftp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/ftp"
)

// stallServer is a minimal FTP server that starts uploads and downloads and
// then stops moving data and answering, as a hung server or a dead network
// would. Real servers cannot be made to do that on demand.
type stallServer struct {
	ln    net.Listener
	greet bool // send the 220 greeting

	mu    gosync.Mutex
	cmds  []string
	conns []net.Conn
}

func startStallServer(t *testing.T, greet bool) *stallServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallServer{ln: ln, greet: greet}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.track(c)
			go s.session(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *stallServer) url() *url.URL {
	return &url.URL{Scheme: "ftp", User: url.UserPassword("u", "p"), Host: s.ln.Addr().String(), Path: "/dir"}
}

// open connects a relay to the server and closes it when the test ends.
func (s *stallServer) open(t *testing.T, opts relay.Options) relay.Relay {
	t.Helper()
	r, err := ftp.Open(context.Background(), s.url(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// count returns how many commands the server received that match.
func (s *stallServer) count(match func(cmd string) bool) int {
	n := 0
	for _, c := range s.commands() {
		if match(c) {
			n++
		}
	}
	return n
}

func isLogin(c string) bool { return strings.HasPrefix(c, "USER ") }

func (s *stallServer) track(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

func (s *stallServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

func (s *stallServer) session(c net.Conn) {
	if !s.greet {
		return // never say anything
	}
	reply := func(format string, args ...any) { fmt.Fprintf(c, format+"\r\n", args...) }
	reply("220 stall server")
	rd := bufio.NewReader(c)
	var pasv net.Listener
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.cmds = append(s.cmds, line)
		s.mu.Unlock()
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case "USER":
			reply("331 password please")
		case "PASS":
			reply("230 logged in")
		case "FEAT":
			reply("211-Features:\r\n SIZE\r\n211 End")
		case "TYPE", "NOOP":
			reply("200 ok")
		case "PWD":
			reply(`257 "/" is the current directory`)
		case "CWD", "DELE":
			reply("250 ok")
		case "MKD":
			reply(`257 "%s" created`, arg)
		case "SIZE":
			if strings.Contains(arg, "missing") {
				reply("550 %s: No such file or directory", arg)
				continue
			}
			reply("213 %d", 1<<20)
		case "EPSV":
			if pasv, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				reply("425 %v", err)
				continue
			}
			reply("229 Entering Extended Passive Mode (|||%d|)", pasv.Addr().(*net.TCPAddr).Port)
		case "LIST":
			// A server that takes LIST's -a for a file name.
			if arg == "-a" {
				reply("550 -a: No such file or directory")
				continue
			}
			reply("150 here it comes")
			d, err := pasv.Accept()
			pasv.Close()
			if err != nil {
				return
			}
			fmt.Fprintf(d, "-rw-r--r--    1 0        0               5 Nov 24 17:26 file\r\n")
			d.Close()
			reply("226 done")
		case "STOR", "RETR":
			reply("150 go ahead")
			d, err := pasv.Accept()
			pasv.Close()
			if err != nil {
				return
			}
			s.track(d)
			if cmd == "RETR" {
				d.Write(make([]byte, 1000))
			}
			// Then nothing more on either connection: no data, no reply.
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// zeros is a large payload that is never exhausted in these tests.
type zeros struct{ n int64 }

func (z *zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }
func (z *zeros) Length() int64              { return z.n }
func (z *zeros) Rewind() error              { return nil }

func TestCancelStalledPut(t *testing.T) {
	t.Parallel()
	s := startStallServer(t, true)
	r := s.open(t, relay.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := r.Put(ctx, "a/b", &zeros{n: 1 << 40})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put to a stalled server with a context that ends: %v; want context.DeadlineExceeded", err)
	}
	// The upload is cut at once; the server then gets a few seconds to
	// answer (it does not), and the temporary file is deleted.
	var stor, dele string
	for _, c := range s.commands() {
		switch {
		case strings.HasPrefix(c, "STOR "):
			stor = strings.TrimPrefix(c, "STOR ")
		case strings.HasPrefix(c, "DELE "):
			dele = strings.TrimPrefix(c, "DELE ")
		}
	}
	if !strings.HasPrefix(stor, "/dir/a/"+relay.TempPrefix) || dele != stor {
		t.Errorf("stored %q and deleted %q; want a temporary name under /dir/a deleted after the failure", stor, dele)
	}
}

func TestCancelStalledGet(t *testing.T) {
	t.Parallel()
	s := startStallServer(t, true)
	r := s.open(t, relay.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var got int
	err := r.Get(ctx, "obj", 0, -1, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		got = len(b)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) || got != 1000 {
		t.Fatalf("get from a stalled server: %d bytes, %v; want 1000 bytes, then context.DeadlineExceeded", got, err)
	}
	// The relay still works: a new connection replaces the closed one.
	if st, err := r.Stat(context.Background(), "obj"); err != nil || st.Size != 1<<20 {
		t.Errorf("stat after a cancelled get: %+v, %v", st, err)
	}
}

func TestStalledGetTimesOut(t *testing.T) {
	t.Parallel()
	s := startStallServer(t, true)
	r := s.open(t, relay.Options{Timeout: 300 * time.Millisecond})
	err := r.Get(context.Background(), "obj", 0, -1, func(rd io.Reader) error {
		_, err := io.ReadAll(rd)
		return err
	})
	if err == nil || relay.IsPermanent(err) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("get from a stalled server: %v; want a transient timeout", err)
	}
}

func TestSilentServer(t *testing.T) {
	t.Parallel()
	s := startStallServer(t, false)
	_, err := ftp.Open(context.Background(), s.url(), relay.Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, relay.ErrUnreachable) {
		t.Errorf("open of a server that never greets: %v; want relay.ErrUnreachable (timeout)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = ftp.Open(ctx, s.url(), relay.Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("open of a server that never greets with a context that ends: %v; want context.DeadlineExceeded", err)
	}
}

func TestPoolReuse(t *testing.T) {
	t.Parallel()
	s := startStallServer(t, true)
	r := s.open(t, relay.Options{})
	for range 5 {
		if _, err := r.Stat(context.Background(), "obj"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Stat(context.Background(), "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat of a missing object: %v", err)
		}
	}
	if logins := s.count(isLogin); logins != 1 {
		t.Errorf("%d logins for sequential calls; want 1: the connection, refusals included, should be reused", logins)
	}
}

func TestListWithoutDashA(t *testing.T) {
	t.Parallel()
	s := startStallServer(t, true)
	r := s.open(t, relay.Options{})
	for range 2 {
		var names []string
		err := r.List(context.Background(), "", func(oi relay.ObjectInfo) error {
			names = append(names, oi.Name)
			return nil
		})
		if err != nil || len(names) != 1 || names[0] != "file" {
			t.Errorf("list from a server that refuses LIST -a: %q, %v; want [file]", names, err)
		}
	}
	if n := s.count(func(c string) bool { return c == "LIST -a" }); n != 1 {
		t.Errorf("LIST -a sent %d times; want once, then plain LIST", n)
	}
}

func TestDroppedIdleConnection(t *testing.T) {
	t.Parallel()
	s := startStallServer(t, true)
	r := s.open(t, relay.Options{})
	ftp.SetIdleCheck(r, 0)
	// The server drops the idle connection, as servers do after their
	// idle timeout.
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if _, err := r.Stat(context.Background(), "obj"); err != nil {
		t.Fatalf("stat after the server dropped the idle connection: %v", err)
	}
	isNoop := func(c string) bool { return c == "NOOP" }
	if noops, logins := s.count(isNoop), s.count(isLogin); noops != 0 || logins != 2 {
		// The NOOP went to a closed connection, so the server never saw it.
		t.Errorf("%d NOOPs and %d logins seen; want 0 and 2", noops, logins)
	}
	if _, err := r.Stat(context.Background(), "obj"); err != nil {
		t.Fatal(err)
	}
	if noops := s.count(isNoop); noops != 1 {
		t.Errorf("%d NOOPs before reusing an idle connection; want 1", noops)
	}
}
