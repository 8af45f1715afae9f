package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
)

// DefaultMaxListBytes bounds a pod list read from the kubelet: a full node
// (110 pods) answers a few MiB.
const DefaultMaxListBytes = 64 << 20

// KubeletConfig configures a Kubelet source.
type KubeletConfig struct {
	// URL is the kubelet's base URL, e.g. https://node-1:10250.
	URL string
	// TokenFile holds the bearer token (the service account token). It is
	// read for every request (at most a few a second), so a rotated
	// projected token is used as soon as the kubelet writes it. Empty: no
	// token is sent.
	TokenFile string
	// CAFile verifies the kubelet's serving certificate; empty: the
	// system roots.
	CAFile string
	// Insecure skips verifying the serving certificate; only when asked
	// for explicitly. It cannot be combined with CAFile.
	Insecure bool
	// UserAgent is sent with every request ("crashdump/<version>").
	UserAgent string
	// Timeout bounds one request; default 10s.
	Timeout time.Duration
	// MaxBytes bounds the body read; default DefaultMaxListBytes.
	MaxBytes int64
	Retry    Retry
}

// Kubelet lists the node's pods from the kubelet's read-only pod endpoint
// (GET /pods, authorized by the kubelet as get nodes/pods, or nodes/proxy on
// clusters before fine-grained kubelet authorization). Safe for concurrent
// use.
type Kubelet struct {
	url    string
	client *http.Client
	max    int64
	retry  Retry
}

// NewKubelet builds a kubelet source. It reads the token and CA files once
// to fail early on a wrong path; nothing is sent to the kubelet yet.
func NewKubelet(cfg KubeletConfig) (*Kubelet, error) {
	if cfg.TokenFile != "" {
		if _, err := readToken(cfg.TokenFile); err != nil {
			return nil, err
		}
	}
	base := strings.TrimRight(cfg.URL, "/")
	// Never plain HTTP: the service account token would travel in clear.
	if !strings.HasPrefix(base, "https://") || len(base) == len("https://") {
		return nil, fmt.Errorf("kubelet URL %q: want https://host:port", cfg.URL)
	}
	if cfg.Insecure && cfg.CAFile != "" {
		return nil, errors.New("kubelet: a CA file and skipping TLS verification exclude each other")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxListBytes
	}
	// client-go's transport brings TLS from the CA file and the user agent;
	// only the transport is used, /pods is not an API group. The token is
	// added below it, read fresh for each request.
	rc := &rest.Config{
		Host:            base,
		TLSClientConfig: rest.TLSClientConfig{CAFile: cfg.CAFile, Insecure: cfg.Insecure},
		UserAgent:       cfg.UserAgent,
		Timeout:         cfg.Timeout,
	}
	if cfg.TokenFile != "" {
		rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return &tokenFileTransport{path: cfg.TokenFile, next: rt}
		}
	}
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubelet client for %s: %w", base, err)
	}
	return &Kubelet{url: base + "/pods", client: client, max: cfg.MaxBytes, retry: cfg.Retry}, nil
}

func (k *Kubelet) String() string { return "kubelet " + strings.TrimSuffix(k.url, "/pods") }

// List implements Source.
func (k *Kubelet) List(ctx context.Context) ([]corev1.Pod, error) {
	pods, err := k.retry.do(ctx, k.listOnce)
	if err != nil {
		return nil, fmt.Errorf("list pods from kubelet: %w", err)
	}
	return pods, nil
}

func (k *Kubelet) listOnce(ctx context.Context) ([]corev1.Pod, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &StatusError{URL: k.url, Code: resp.StatusCode, Body: printable(snippet, 160)}
	}
	var list corev1.PodList
	lr := &io.LimitedReader{R: resp.Body, N: k.max + 1}
	if err := json.NewDecoder(lr).Decode(&list); err != nil {
		if lr.N <= 0 {
			return nil, &BadResponseError{URL: k.url, Reason: fmt.Sprintf("larger than %d bytes", k.max)}
		}
		return nil, &BadResponseError{URL: k.url, Reason: err.Error()}
	}
	// The kubelet encodes its answer with the v1 codec, which always
	// writes the type: "{}" or another object is not an empty node.
	if list.Kind != "PodList" || list.APIVersion != "v1" {
		return nil, &BadResponseError{URL: k.url, Reason: fmt.Sprintf("kind %q apiVersion %q", list.Kind, list.APIVersion)}
	}
	if err := checkPods(k.url, list.Items); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// printable keeps the first n printable characters of b on one line.
func printable(b []byte, n int) string {
	var sb strings.Builder
	for _, r := range strings.TrimSpace(string(b)) {
		if sb.Len() >= n {
			sb.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			sb.WriteRune(r)
		} else {
			sb.WriteByte(' ')
		}
	}
	return sb.String()
}

// tokenFileTransport sets the bearer token read from a file. The token never
// appears in an error: only the file's path does.
type tokenFileTransport struct {
	path string
	next http.RoundTripper
}

func (t *tokenFileTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := readToken(t.path)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.next.RoundTrip(req)
}

// maxTokenBytes bounds a token file (service account tokens are ~1 KiB).
const maxTokenBytes = 64 << 10

func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read kubelet token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes))
	if err != nil {
		return "", fmt.Errorf("read kubelet token %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("read kubelet token %s: file is empty", path)
	}
	return tok, nil
}
