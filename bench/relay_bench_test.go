// Package bench measures relay throughput per backend, each figure beside a
// baseline doing the same work against the same server in the same run:
// cp for a local directory, curl for FTP and WebDAV, the OpenSSH sftp client
// for SFTP and a plain minio-go loop for S3. Run it with make bench.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jlaffaye/ftp"
	"github.com/minio/minio-go/v7"

	"github.com/escalefs/escalefs/internal/testserver"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	"github.com/escalefs/escalefs/relay/relaytest"
)

const (
	bigSize   = 64 << 20
	smallSize = 1 << 10
	smallOps  = 200 // 1 KiB objects per iteration
)

// target is one relay under test plus the baseline that does the same work
// against the same storage.
type target struct {
	name  string
	relay relay.Relay
	// putFile, getFile and putMany run the baseline tool.
	putFile func(b *testing.B, local, name string)
	getFile func(b *testing.B, name string)
	putMany func(b *testing.B, locals []string, dir string)
	// plainMany, if set, stores the small objects with the protocol's
	// plain Go client on one connection: no temporary names, no retries.
	plainMany func(b *testing.B, data []byte, n int, dir string)
}

func BenchmarkRelay(b *testing.B) {
	big := relaytest.RandomBytes(bigSize)
	scratch := b.TempDir()
	bigFile := filepath.Join(scratch, "big")
	if err := os.WriteFile(bigFile, big, 0o600); err != nil {
		b.Fatal(err)
	}
	var smallFiles []string
	for i := range smallOps {
		f := filepath.Join(scratch, fmt.Sprintf("small-%03d", i))
		if err := os.WriteFile(f, relaytest.RandomBytes(smallSize), 0o600); err != nil {
			b.Fatal(err)
		}
		smallFiles = append(smallFiles, f)
	}
	small := relaytest.RandomBytes(smallSize)

	for _, mk := range []func(b *testing.B) target{fileTarget, pureFTPdTarget, apacheTarget, sftpTarget, s3Target} {
		tg := mk(b)
		ctx := context.Background()
		// The small-object figures come first: after large transfers,
		// pure-ftpd answers curl's EPSV only after a one-second pause
		// (seen on every run here), which would swamp the baseline.
		b.Run(tg.name+"/put-1KiB/escalefs", func(b *testing.B) {
			for i := range b.N {
				for j := range smallOps {
					if err := tg.relay.Put(ctx, fmt.Sprintf("small/e%d/%03d", i, j), relay.BytesPayload(small)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*smallOps)/b.Elapsed().Seconds(), "ops/s")
		})
		b.Run(tg.name+"/put-1KiB/baseline", func(b *testing.B) {
			for i := range b.N {
				tg.putMany(b, smallFiles, fmt.Sprintf("small/b%d", i))
			}
			b.ReportMetric(float64(b.N*smallOps)/b.Elapsed().Seconds(), "ops/s")
		})
		if tg.plainMany != nil {
			b.Run(tg.name+"/put-1KiB/plain-client", func(b *testing.B) {
				for i := range b.N {
					tg.plainMany(b, small, smallOps, fmt.Sprintf("small/p%d", i))
				}
				b.ReportMetric(float64(b.N*smallOps)/b.Elapsed().Seconds(), "ops/s")
			})
		}
		b.Run(tg.name+"/put-64MiB/escalefs", func(b *testing.B) {
			b.SetBytes(bigSize)
			for i := range b.N {
				if err := tg.relay.Put(ctx, fmt.Sprintf("big/e%d", i), relay.BytesPayload(big)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tg.name+"/put-64MiB/baseline", func(b *testing.B) {
			b.SetBytes(bigSize)
			for i := range b.N {
				tg.putFile(b, bigFile, fmt.Sprintf("big/b%d", i))
			}
		})
		b.Run(tg.name+"/get-64MiB/escalefs", func(b *testing.B) {
			b.SetBytes(bigSize)
			for range b.N {
				err := tg.relay.Get(ctx, "big/e0", 0, -1, func(r io.Reader) error {
					n, err := io.Copy(io.Discard, r)
					if err == nil && n != bigSize {
						err = fmt.Errorf("read %d bytes, want %d", n, bigSize)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tg.name+"/get-64MiB/baseline", func(b *testing.B) {
			b.SetBytes(bigSize)
			for range b.N {
				tg.getFile(b, "big/b0")
			}
		})
	}
}

func run(b *testing.B, name string, args ...string) {
	b.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func fileTarget(b *testing.B) target {
	dir := b.TempDir()
	r, err := all.Open(context.Background(), "file://"+dir, relay.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return target{
		name:  "file",
		relay: r,
		putFile: func(b *testing.B, local, name string) {
			dst := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(dst), 0o700)
			run(b, "cp", local, dst)
			run(b, "sync", dst) // escalefs fsyncs each put; so must the baseline
		},
		getFile: func(b *testing.B, name string) { run(b, "cp", filepath.Join(dir, name), "/dev/null") },
		putMany: func(b *testing.B, locals []string, sub string) {
			dst := filepath.Join(dir, sub)
			os.MkdirAll(dst, 0o700)
			run(b, "cp", append(append([]string{}, locals...), dst)...)
			run(b, "sync", dst)
		},
	}
}

// curlTarget opens base (a URL without credentials) through escalefs and
// builds curl baselines against the same server.
func curlTarget(b *testing.B, name, base, user, pass string, extra ...string) target {
	r, err := all.Open(context.Background(), base, relay.Options{Password: pass})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	curl := func(b *testing.B, args ...string) {
		run(b, "curl", append(append([]string{"-sS", "--fail", "-u", user + ":" + pass, "--ftp-create-dirs"}, extra...), args...)...)
	}
	// curl creates FTP directories (--ftp-create-dirs) but not WebDAV
	// collections; MKCOL of an existing one fails harmlessly.
	mkcol := func(dir string) {
		if strings.HasPrefix(base, "http") {
			exec.Command("curl", "-sS", "-o", "/dev/null", "-u", user+":"+pass, "-X", "MKCOL", base+"/"+dir+"/").Run()
		}
	}
	return target{
		name:  name,
		relay: r,
		putFile: func(b *testing.B, local, name string) {
			mkcol(filepath.Dir(name))
			curl(b, "-T", local, base+"/"+name)
		},
		getFile: func(b *testing.B, name string) { curl(b, "-o", "/dev/null", base+"/"+name) },
		putMany: func(b *testing.B, locals []string, sub string) {
			mkcol(filepath.Dir(sub))
			mkcol(sub)
			// One curl process uploads every file over one connection.
			curl(b, "-T", "{"+strings.Join(locals, ",")+"}", base+"/"+sub+"/")
		},
	}
}

func pureFTPdTarget(b *testing.B) target {
	s := testserver.StartPureFTPd(b)
	u, _ := s.NewRelayDir(b, "ftp")
	tg := curlTarget(b, "pure-ftpd", u.String(), s.User, s.Password)
	runs := 0
	tg.plainMany = func(b *testing.B, data []byte, n int, dir string) {
		runs++ // the benchmark runs once with N=1 first: use a new directory each time
		dir = fmt.Sprintf("%s-%d", dir, runs)
		c, err := ftp.Dial(s.Addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Quit()
		if err := c.Login(s.User, s.Password); err != nil {
			b.Fatal(err)
		}
		d := u.Path + "/" + dir
		c.MakeDir(u.Path + "/small")
		if err := c.MakeDir(d); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := c.Stor(fmt.Sprintf("%s/%03d", d, i), bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return tg
}

func apacheTarget(b *testing.B) target {
	s := testserver.StartApache(b, testserver.DAVOptions{})
	u, _ := s.Subdir(b)
	u = strings.Replace(u, "://", "://"+s.User+"@", 1)
	return curlTarget(b, "apache-webdav", u, s.User, s.Password)
}

// sftpTarget opens a relay directory of the sshd harness with its client
// key and runs the OpenSSH sftp client in batch mode as the baseline.
func sftpTarget(b *testing.B) target {
	s := testserver.StartSSHD(b)
	client := testserver.LookBinary(b, "sftp")
	u, disk := s.NewRelayDir(b)
	r, err := all.Open(context.Background(), u.String(), relay.Options{
		Getenv:    func(string) string { return "" },
		NetrcFile: os.DevNull,
		SSH:       relay.SSHOptions{KeyFile: s.KeyFile, KnownHostsFile: s.KnownHosts},
	})
	if err != nil {
		b.Fatalf("open %s: %v\nserver output:\n%s", u, err, s.Process.Output())
	}
	b.Cleanup(func() { r.Close() })
	scripts := b.TempDir()
	batches := 0
	// batch runs one sftp session that executes lines; a leading "-"
	// ignores a command's failure (mkdir of an existing directory).
	batch := func(b *testing.B, lines ...string) {
		batches++
		file := filepath.Join(scripts, fmt.Sprintf("batch-%d", batches))
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		run(b, client, "-b", file, "-i", s.KeyFile, "-P", fmt.Sprint(s.Port),
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			s.User+"@127.0.0.1")
	}
	remote := func(name string) string { return disk + "/" + name }
	return target{
		name:  "sftp",
		relay: r,
		putFile: func(b *testing.B, local, name string) {
			batch(b, "-mkdir "+remote(filepath.Dir(name)), "put "+local+" "+remote(name))
		},
		getFile: func(b *testing.B, name string) { batch(b, "get "+remote(name)+" /dev/null") },
		putMany: func(b *testing.B, locals []string, sub string) {
			lines := []string{"-mkdir " + remote(filepath.Dir(sub)), "-mkdir " + remote(sub)}
			for _, l := range locals {
				lines = append(lines, "put "+l+" "+remote(sub)+"/"+filepath.Base(l))
			}
			// One sftp process uploads every file over one connection.
			batch(b, lines...)
		},
	}
}

// s3Target opens a prefix of the SeaweedFS harness's bucket and stores the
// same objects with the harness's plain minio-go client as the baseline.
func s3Target(b *testing.B) target {
	s := testserver.StartSeaweedFS(b)
	prefix := s.NewPrefix(b)
	r, err := all.Open(context.Background(), s.URL(prefix), s.Options())
	if err != nil {
		b.Fatalf("open %s: %v\nserver output:\n%s", s.URL(prefix), err, s.Process.Output())
	}
	b.Cleanup(func() { r.Close() })
	ctx := context.Background()
	key := func(name string) string { return prefix + "/" + name }
	putLocal := func(b *testing.B, local, name string) {
		f, err := os.Open(local)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Client.PutObject(ctx, s.Bucket, key(name), f, st.Size(), minio.PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	return target{
		name:    "s3",
		relay:   r,
		putFile: putLocal,
		getFile: func(b *testing.B, name string) {
			o, err := s.Client.GetObject(ctx, s.Bucket, key(name), minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer o.Close()
			n, err := io.Copy(io.Discard, o)
			if err == nil && n != bigSize {
				err = fmt.Errorf("read %d bytes, want %d", n, bigSize)
			}
			if err != nil {
				b.Fatal(err)
			}
		},
		putMany: func(b *testing.B, locals []string, sub string) {
			for _, l := range locals {
				putLocal(b, l, sub+"/"+filepath.Base(l))
			}
		},
	}
}
