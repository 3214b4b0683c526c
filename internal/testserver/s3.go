package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/escalefs/escalefs/relay"
)

// WeedVersion is the SeaweedFS version (a Go module version of
// github.com/seaweedfs/seaweedfs) whose S3 gateway the tests run.
const WeedVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// WeedEnv names a weed binary to use instead of the cached build.
const WeedEnv = "ESCALEFS_WEED"

// WeedPath returns where scripts/install-test-deps.sh puts the weed binary:
// $XDG_CACHE_HOME/escalefs-test/weed-<WeedVersion> (~/.cache/… without
// XDG_CACHE_HOME), or $ESCALEFS_WEED when set.
func WeedPath() string {
	if p := os.Getenv(WeedEnv); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "escalefs-test", "weed-"+WeedVersion)
}

// S3Server is a SeaweedFS server (master, volume, filer and S3 gateway in
// one process) started by StartSeaweedFS.
type S3Server struct {
	// Endpoint is the S3 gateway's URL, e.g. http://127.0.0.1:8333.
	Endpoint string
	// Bucket exists and is empty at the start; tests share it, each under
	// its own prefix (NewPrefix).
	Bucket string
	// AccessKey and SecretKey are the credentials the gateway accepts.
	AccessKey, SecretKey string
	// Region is what clients should sign for.
	Region string
	// Client is an S3 client with those credentials, to look behind a
	// relay's back.
	Client *minio.Client
	// Process is the running server; Dir holds its data and configuration.
	Process *Process
	Dir     string
}

// StartSeaweedFS starts SeaweedFS with its S3 gateway on 127.0.0.1, one
// identity (AccessKey, SecretKey) and an empty bucket, and stops it when
// the test ends. It waits until the gateway answers S3 requests. A missing
// weed binary calls Unavailable.
func StartSeaweedFS(t testing.TB) *S3Server {
	t.Helper()
	bin := WeedPath()
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		Unavailable(t, "weed (SeaweedFS %s) is not at %s", WeedVersion, bin)
	}
	dir := TempDir(t)
	s := &S3Server{
		Bucket:    "escalefs-test",
		AccessKey: "escalefs-test-key",
		SecretKey: Password + "-s3-secret",
		Region:    "us-east-1",
		Dir:       dir,
	}
	conf := map[string]any{"identities": []any{map[string]any{
		"name":        User,
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
	}}}
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 8)
	s3port := ports[6]
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	s.Process = Start(t, s3port, bin, "server",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir="+data,
		"-master.port="+p(0), "-master.port.grpc="+p(1), "-master.telemetry=false",
		"-master.volumeSizeLimitMB=64",
		"-volume.port="+p(2), "-volume.port.grpc="+p(3),
		"-filer", "-filer.port="+p(4), "-filer.port.grpc="+p(5),
		"-s3", "-s3.port="+p(6), "-s3.port.grpc="+p(7), "-s3.config="+confFile,
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
	)
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", s3port)
	s.Client, err = minio.New(fmt.Sprintf("127.0.0.1:%d", s3port), &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region: s.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The gateway accepts connections before the master, volume server
	// and filer behind it are ready: poll until the bucket can be made.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.Client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region})
		if err == nil {
			// A write too, which needs a volume.
			_, err = s.Client.PutObject(ctx, s.Bucket, "ready", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		}
		if err != nil && minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			_, err = s.Client.PutObject(ctx, s.Bucket, "ready", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		}
		if err == nil {
			err = s.Client.RemoveObject(ctx, s.Bucket, "ready", minio.RemoveObjectOptions{})
		}
		cancel()
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("SeaweedFS S3 gateway not ready within 60s: %v\n%s", err, tail(s.Process.Output(), 4000))
		}
		select {
		case <-s.Process.done:
			t.Fatalf("weed exited: %v\n%s", s.Process.cmd.ProcessState, tail(s.Process.Output(), 4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for len(out) < n {
		if p := FreePort(t); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// NewPrefix returns a fresh key prefix in the bucket (without slashes),
// so that tests sharing the server see only their own objects.
func (s *S3Server) NewPrefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	return "t-" + hex.EncodeToString(b[:])
}

// URL returns the s3:// relay URL of prefix in the bucket.
func (s *S3Server) URL(prefix string) string { return "s3://" + s.Bucket + "/" + prefix }

// Options returns relay options that reach the server with its
// credentials, given as the AWS environment variables through
// Options.Getenv.
func (s *S3Server) Options() relay.Options {
	env := map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKey, "AWS_SECRET_ACCESS_KEY": s.SecretKey}
	return relay.Options{
		S3Endpoint: s.Endpoint,
		S3Region:   s.Region,
		Getenv:     func(k string) string { return env[k] },
	}
}

// RawKeys lists what the bucket holds under prefix, relative to it:
// every object, and every incomplete multipart upload as
// "<key> (incomplete upload)". Suites use it to check that failed puts
// leave nothing behind.
func (s *S3Server) RawKeys(t testing.TB, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	p := prefix + "/"
	var out []string
	for oi := range s.Client.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: p, Recursive: true}) {
		if oi.Err != nil {
			t.Fatalf("listing %s: %v", p, oi.Err)
		}
		out = append(out, strings.TrimPrefix(oi.Key, p))
	}
	core := minio.Core{Client: s.Client}
	res, err := core.ListMultipartUploads(ctx, s.Bucket, p, "", "", "", 1000)
	if err != nil {
		t.Fatalf("listing incomplete uploads under %s: %v", p, err)
	}
	for _, u := range res.Uploads {
		out = append(out, strings.TrimPrefix(u.Key, p)+" (incomplete upload)")
	}
	return out
}
