// Package kubeapi is the small Kubernetes API server client the agent and
// the retrieval CLI share: list the pods of a node, read a namespace's
// labels, read or list ConfigMaps, create an events.k8s.io/v1 Event.
// Nothing more.
//
// It exists instead of client-go's clientset because importing any typed
// client links k8s.io/client-go/kubernetes/scheme, which registers every
// built-in API group at start-up: about 8 MiB more resident memory in an
// agent that runs on every node and needs four requests. The connection
// itself still comes from client-go's rest package (rest.HTTPClientFor):
// TLS, bearer token files re-read when rotated, exec and auth-provider
// plugins, impersonation and proxies work as in kubectl.
//
// Requests and answers are JSON decoded into the k8s.io/api types. A
// non-2xx answer becomes a *k8s.io/apimachinery/pkg/api/errors.StatusError,
// from the metav1.Status the API server sent or, for a bare answer such as a
// proxy's, from the status code as client-go does; apierrors.IsNotFound,
// IsForbidden, IsUnauthorized and the rest work on it.
package kubeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

const (
	// DefaultTimeout bounds one request when the rest.Config has none: an
	// API server that accepts the connection and never answers must not
	// hold a caller forever.
	DefaultTimeout = 30 * time.Second
	// maxRetries is how often a request is repeated when the API server
	// asks for it (429, or 5xx with Retry-After, as API Priority and
	// Fairness answers), or a GET's connection was reset; client-go's
	// default.
	maxRetries = 10
	// maxRetryAfter caps one Retry-After wait.
	maxRetryAfter = 10 * time.Second
	// maxBody bounds a decoded answer. A node's pod list is a few MiB at
	// most; the bound keeps a broken proxy from exhausting memory.
	maxBody = 128 << 20
	// maxErrorBody bounds what is read from a failed answer.
	maxErrorBody = 64 << 10
	// maxErrorMessage bounds the server text quoted in an error.
	maxErrorMessage = 1024
)

// Client talks to one API server. Safe for concurrent use: it holds no
// per-request state, and http.Client is safe for concurrent use.
type Client struct {
	base      *url.URL // scheme, host and the path prefix of rest.Config.Host
	http      *http.Client
	userAgent string
}

// New builds a client for cfg. The request timeout is cfg.Timeout, or
// DefaultTimeout when it is zero; cfg.UserAgent names the caller (default
// client-go's "<binary>/<version> (<os>/<arch>) kubernetes/<commit>").
// cfg is not modified.
func New(cfg *rest.Config) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("API server address %q: %w", cfg.Host, err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("API server connection to %s: %w", base.Redacted(), err)
	}
	return &Client{base: base, http: hc, userAgent: cfg.UserAgent}, nil
}

// Host is the API server's address, for messages.
func (c *Client) Host() string { return c.base.Redacted() }

// ListOptions are the list query parameters this client sends.
type ListOptions struct {
	FieldSelector string
	LabelSelector string
	// ResourceVersion "0" lets the API server answer from its watch cache.
	ResourceVersion string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.FieldSelector != "" {
		q.Set("fieldSelector", o.FieldSelector)
	}
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	if o.ResourceVersion != "" {
		q.Set("resourceVersion", o.ResourceVersion)
	}
	return q
}

var (
	podsResource       = schema.GroupResource{Resource: "pods"}
	namespacesResource = schema.GroupResource{Resource: "namespaces"}
	configMapsResource = schema.GroupResource{Resource: "configmaps"}
	eventsResource     = schema.GroupResource{Group: "events.k8s.io", Resource: "events"}
)

// ListPods lists the pods of namespace ("" for all namespaces).
func (c *Client) ListPods(ctx context.Context, namespace string, opts ListOptions) (*corev1.PodList, error) {
	p := "/api/v1/pods"
	if namespace != "" {
		p = "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods"
	}
	list := &corev1.PodList{}
	if err := c.do(ctx, request{method: http.MethodGet, path: p, query: opts.query(), resource: podsResource, kind: "PodList"}, list); err != nil {
		return nil, err
	}
	return list, nil
}

// GetNamespace reads a namespace.
func (c *Client) GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/namespaces/" + url.PathEscape(name),
		resource: namespacesResource, name: name, kind: "Namespace"}, ns); err != nil {
		return nil, err
	}
	return ns, nil
}

// GetConfigMap reads a ConfigMap.
func (c *Client) GetConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	if err := c.do(ctx, request{method: http.MethodGet,
		path:     "/api/v1/namespaces/" + url.PathEscape(namespace) + "/configmaps/" + url.PathEscape(name),
		resource: configMapsResource, name: name, kind: "ConfigMap"}, cm); err != nil {
		return nil, err
	}
	return cm, nil
}

// ListConfigMaps lists the ConfigMaps of namespace.
func (c *Client) ListConfigMaps(ctx context.Context, namespace string, opts ListOptions) (*corev1.ConfigMapList, error) {
	list := &corev1.ConfigMapList{}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/namespaces/" + url.PathEscape(namespace) + "/configmaps",
		query: opts.query(), resource: configMapsResource, kind: "ConfigMapList"}, list); err != nil {
		return nil, err
	}
	return list, nil
}

// CreateEvent creates ev in its namespace through events.k8s.io/v1 and
// returns what the API server stored. A name that exists already is an
// error for which apierrors.IsAlreadyExists is true.
func (c *Client) CreateEvent(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	if ev.Namespace == "" {
		return nil, errors.New("create event: no namespace")
	}
	body := *ev
	body.TypeMeta = metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"}
	b, err := json.Marshal(&body)
	if err != nil {
		return nil, fmt.Errorf("encode event %s/%s: %w", ev.Namespace, ev.Name, err)
	}
	out := &eventsv1.Event{}
	if err := c.do(ctx, request{method: http.MethodPost,
		path: "/apis/events.k8s.io/v1/namespaces/" + url.PathEscape(ev.Namespace) + "/events",
		body: b, resource: eventsResource, name: ev.Name, kind: "Event"}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// request is one API call.
type request struct {
	method   string
	path     string // below the API server's base URL, e.g. /api/v1/pods
	query    url.Values
	body     []byte // JSON, for POST
	resource schema.GroupResource
	name     string // the object's name, for errors ("" for lists)
	kind     string // the kind a 2xx answer must be, when it names one
}

// do sends r, retrying when the API server asks for it, and decodes a 2xx
// answer into out.
func (c *Client) do(ctx context.Context, r request, out any) error {
	u := *c.base
	u.Path = path.Join("/", c.base.Path, r.path)
	u.RawPath = ""
	u.RawQuery = r.query.Encode()
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", r.method, u.Path, err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		if r.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			// A reset or cut connection (an API server restarting) is
			// retried for reads, as client-go does; a POST may have
			// arrived, so it is not.
			if r.method == http.MethodGet && attempt < maxRetries && ctx.Err() == nil &&
				(utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)) {
				if werr := sleep(ctx, time.Second); werr != nil {
					return err
				}
				continue
			}
			return err // *url.Error names the method and URL
		}
		if wait, ok := retryAfter(resp); ok && attempt < maxRetries {
			drain(resp.Body)
			if werr := sleep(ctx, wait); werr != nil {
				return errors.Join(responseError(resp, nil, r), werr)
			}
			continue
		}
		return c.finish(resp, r, u.Path, out)
	}
}

// finish maps a non-2xx answer to an API error, or decodes a 2xx one.
func (c *Client) finish(resp *http.Response, r request, p string, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return responseError(resp, b, r)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", r.method, p, err)
	}
	if len(b) > maxBody {
		return fmt.Errorf("%s %s: answer larger than %d MiB", r.method, p, maxBody>>20)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt != "application/json" {
			return fmt.Errorf("%s %s: answer is %s, not JSON", r.method, p, mt)
		}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode %s: %w", r.method, p, r.kind, err)
	}
	// The kind is checked when the answer names one: a Status or another
	// object with a 2xx code is not what was asked for. Like client-go,
	// an answer without a kind is taken as the kind asked for.
	if o, ok := out.(interface{ GetObjectKind() schema.ObjectKind }); ok && r.kind != "" {
		if k := o.GetObjectKind().GroupVersionKind().Kind; k != "" && k != r.kind {
			return fmt.Errorf("%s %s: answer is a %s, not a %s", r.method, p, k, r.kind)
		}
	}
	return nil
}

// responseError turns a non-2xx answer into an API error: the API server's
// own metav1.Status when it sent one, else one built from the status code
// (as client-go does for a proxy's or load balancer's bare answer).
func responseError(resp *http.Response, body []byte, r request) error {
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Status != "" && st.Status != metav1.StatusSuccess {
		if st.Code == 0 {
			st.Code = int32(resp.StatusCode)
		}
		return &apierrors.StatusError{ErrStatus: st}
	}
	wait, _ := retryAfterSeconds(resp)
	text := printable(string(body), maxErrorMessage)
	err := apierrors.NewGenericServerResponse(resp.StatusCode, r.method, r.resource, r.name, text, wait, true)
	// client-go keeps a bare answer's text in the details only, for most
	// codes; a proxy's "upstream connect error" is worth seeing in a log.
	if text != "" && !strings.Contains(err.ErrStatus.Message, text) {
		err.ErrStatus.Message += ": " + text
	}
	return err
}

// retryAfter reports whether the answer asks to be retried, and after how
// long: a 429, or a 5xx with Retry-After, as client-go honours them.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
		return 0, false
	}
	s, ok := retryAfterSeconds(resp)
	if !ok {
		return 0, false
	}
	return min(time.Duration(s)*time.Second, maxRetryAfter), true
}

func retryAfterSeconds(resp *http.Response) (int, bool) {
	h := resp.Header.Get("Retry-After")
	if h == "" {
		return 0, false
	}
	s, err := strconv.Atoi(h)
	if err != nil || s < 0 {
		return 0, false
	}
	return s, true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// drain reads a little of an unused body so the connection can be reused.
func drain(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, maxErrorBody))
	_ = b.Close()
}

// printable keeps server text on one printable line of at most max bytes.
func printable(s string, max int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s))
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
