package main

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
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Credentials of the benchmark's own MinIO (bench-only, 127.0.0.1).
const (
	accessKey = "crashdump-bench"
	secretKey = "crashdump-bench-secret"
	mcAlias   = "perf"
)

// minio is a MinIO server process on 127.0.0.1 with its data in dataDir.
type minio struct {
	cmd      *exec.Cmd
	addr     string
	endpoint string
	dataDir  string
	client   *s3.Client
	log      *os.File
}

func startMinIO(bin, dataDir string) (*minio, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(filepath.Dir(dataDir), "minio.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, dataDir)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+accessKey, "MINIO_ROOT_PASSWORD="+secretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (run `make tools`): %w", bin, err)
	}
	m := &minio{cmd: cmd, addr: addr, endpoint: "http://" + addr, dataDir: dataDir, log: logf}
	m.client = s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(m.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(m.endpoint + "/minio/health/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, lerr := m.client.ListBuckets(ctx, &s3.ListBucketsInput{})
				cancel()
				if lerr == nil {
					return m, nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.stop()
	return nil, errors.New("minio did not become ready within 60s")
}

func (m *minio) stop() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.log.Close()
}

func (m *minio) pid() int { return m.cmd.Process.Pid }

// agentEnv is the environment of an agent run: the SDK default chain finds
// the credentials in it, and nothing from the user's AWS config leaks in.
func (m *minio) agentEnv() []string {
	env := []string{}
	for _, e := range os.Environ() {
		if len(e) >= 4 && (e[:4] == "AWS_" || (len(e) >= 10 && e[:10] == "CRASHDUMP_")) {
			continue
		}
		env = append(env, e)
	}
	return append(env, "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey, "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"NODE_NAME=bench-node")
}

// mcEnv is the environment of an mc run: the alias comes from MC_HOST_*.
func (m *minio) mcEnv(configDir string) []string {
	return append(os.Environ(), "MC_HOST_"+mcAlias+"=http://"+accessKey+":"+secretKey+"@"+m.addr,
		"MC_CONFIG_DIR="+configDir, "MC_DISABLE_PAGER=1")
}

func (m *minio) makeBucket(ctx context.Context, b string) error {
	_, err := m.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
	var owned *types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) {
		return nil
	}
	return err
}

type object struct {
	Key  string
	Size int64
}

func (m *minio) list(ctx context.Context, bucket, prefix string) ([]object, error) {
	var out []object
	p := s3.NewListObjectsV2Paginator(m.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// clear deletes every object under prefix and every unfinished multipart
// upload in the bucket, so that disk use stays flat between rounds.
func (m *minio) clear(ctx context.Context, bucket, prefix string) error {
	objs, err := m.list(ctx, bucket, prefix)
	if err != nil {
		return err
	}
	for len(objs) > 0 {
		n := min(len(objs), 1000)
		var ids []types.ObjectIdentifier
		for _, o := range objs[:n] {
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(o.Key)})
		}
		out, err := m.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("delete objects in %s: %w", bucket, err)
		}
		if len(out.Errors) > 0 {
			return fmt.Errorf("delete %s: %s", aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
		objs = objs[n:]
	}
	ups, err := m.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		return err
	}
	for _, u := range ups.Uploads {
		_, _ = m.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId})
	}
	return nil
}

func (m *minio) get(ctx context.Context, bucket, key string) (io.ReadCloser, error) {
	out, err := m.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	return out.Body, nil
}
