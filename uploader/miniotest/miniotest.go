// Package miniotest starts a real MinIO server for tests and benchmarks: the
// server binary the Makefile installs into ./bin (`make tools`), listening on
// 127.0.0.1 on a free port, with its data in a temporary directory. Tests
// talk to it through the AWS SDK exactly as the agent talks to S3 — never a
// mock. MinIO is AGPL and is only ever run as a separate process.
package miniotest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials of the test server's root user (test-only, never used
// anywhere else).
const (
	AccessKey = "crashdump-test"
	SecretKey = "crashdump-test-secret"
)

// Server is a running MinIO.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	Addr     string
	DataDir  string
	bin      string
	env      []string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	logFile  string
}

// Binary locates the MinIO server: $CRASHDUMP_MINIO_BIN, else bin/minio at
// the repository root (found by walking up from the working directory).
func Binary() (string, error) {
	if p := os.Getenv("CRASHDUMP_MINIO_BIN"); p != "" {
		return p, nil
	}
	return repoBin("minio")
}

// MCBinary locates the MinIO client `mc` the same way ($CRASHDUMP_MC_BIN).
func MCBinary() (string, error) {
	if p := os.Getenv("CRASHDUMP_MC_BIN"); p != "" {
		return p, nil
	}
	return repoBin("mc")
}

func repoBin(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", name)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s not found at %s: run `make tools`", name, p)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s: no go.mod above the working directory", name)
		}
		dir = parent
	}
}

// Options for Start.
type Options struct {
	// KMSSecretKey enables SSE-S3 and SSE-KMS with a static key,
	// "name:base64-of-32-bytes" (MINIO_KMS_SECRET_KEY).
	KMSSecretKey string
}

// Start starts a MinIO server for the test and stops it at cleanup. It
// fails the test if the binary is missing: `make test` installs it.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	bin, err := Binary()
	if err != nil {
		t.Fatalf("minio: %v", err)
	}
	s := &Server{bin: bin, DataDir: t.TempDir()}
	s.Addr, err = freeAddr()
	if err != nil {
		t.Fatalf("minio: %v", err)
	}
	s.Endpoint = "http://" + s.Addr
	s.logFile = filepath.Join(t.TempDir(), "minio.log")
	s.env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey,
		"MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	if o.KMSSecretKey != "" {
		s.env = append(s.env, "MINIO_KMS_SECRET_KEY="+o.KMSSecretKey)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("minio: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Restart starts the server again after Stop (same address, same data), for
// tests of the store going away mid-upload.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("minio already running")
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.Addr, s.DataDir)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.cmd = nil
			b, _ := os.ReadFile(s.logFile)
			return fmt.Errorf("minio exited during start-up: %s", b)
		default:
		}
		// Ready means answering S3 requests, which comes a little after
		// the health endpoint says so.
		resp, err := http.Get(s.Endpoint + "/minio/health/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, lerr := s.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
				cancel()
				if lerr == nil {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("minio did not become ready within 60s")
}

// Stop kills the server (SIGKILL: a store that vanishes, not one that
// shuts down politely) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Env returns the environment a crashdump process needs to reach the
// server through the AWS SDK default credential chain.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// SetEnv sets Env() on the test process (for in-process agents).
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
}

// Client is an S3 client for assertions, independent of the code under test.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Keys lists every key in bucket under prefix.
func (s *Server) Keys(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// Get reads an object whole.
func (s *Server) Get(t testing.TB, bucket, key string) []byte {
	t.Helper()
	out, err := s.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return b
}

// MultipartUploads lists unfinished multipart uploads in bucket.
func (s *Server) MultipartUploads(t testing.TB, bucket string) []string {
	t.Helper()
	out, err := s.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads %s: %v", bucket, err)
	}
	var ids []string
	for _, u := range out.Uploads {
		ids = append(ids, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return ids
}

// ProcessID is the server's PID (0 when stopped).
func (s *Server) ProcessID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
