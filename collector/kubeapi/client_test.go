package kubeapi_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/crashdump-io/crashdump/collector/kubeapi"
)

// apiServer is an HTTPS server on 127.0.0.1 that checks the bearer token
// as the API server's authenticator does (401 with a Status otherwise) and
// hands authenticated requests to handle. It records what arrived.
type apiServer struct {
	*httptest.Server
	mu     sync.Mutex
	token  string
	seen   []*http.Request
	bodies []string
	handle http.HandlerFunc
}

func startAPIServer(t *testing.T, handle http.HandlerFunc) *apiServer {
	t.Helper()
	a := &apiServer{token: "t0k3n-" + strings.ReplaceAll(t.Name(), "/", "-"), handle: handle}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.seen = append(a.seen, r)
		a.bodies = append(a.bodies, string(body))
		tok, handle := a.token, a.handle
		a.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+tok {
			writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		handle(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

// setHandle replaces the handler for the requests to come.
func (a *apiServer) setHandle(h http.HandlerFunc) {
	a.mu.Lock()
	a.handle = h
	a.mu.Unlock()
}

func (a *apiServer) setToken(tok string) {
	a.mu.Lock()
	a.token = tok
	a.mu.Unlock()
}

func (a *apiServer) requests() ([]*http.Request, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*http.Request(nil), a.seen...), append([]string(nil), a.bodies...)
}

// config is a rest.Config for a, as clientcmd or InClusterConfig make one.
func (a *apiServer) config() *rest.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &rest.Config{Host: a.URL, BearerToken: a.token, UserAgent: "crashdump/test",
		TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(a.Server)}}
}

func certPEM(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// writeStatus answers as the API server does on failure.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func newClient(t *testing.T, cfg *rest.Config) *kubeapi.Client {
	t.Helper()
	c, err := kubeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestListPodsSendsTokenUserAgentAndQuery(t *testing.T) {
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/pods" {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
			return
		}
		writeJSON(w, http.StatusOK, corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "api-0", Namespace: "shop", UID: "u1"}, Spec: corev1.PodSpec{NodeName: "node-1"}}}})
	})
	c := newClient(t, a.config())
	list, err := c.ListPods(context.Background(), "", kubeapi.ListOptions{FieldSelector: "spec.nodeName=node-1", ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "api-0" || list.Items[0].Spec.NodeName != "node-1" {
		t.Fatalf("items = %+v", list.Items)
	}
	reqs, _ := a.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if got := r.URL.RawQuery; got != "fieldSelector=spec.nodeName%3Dnode-1&resourceVersion=0" {
		t.Errorf("query %q", got)
	}
	if got := r.UserAgent(); got != "crashdump/test" {
		t.Errorf("User-Agent %q", got)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept %q", got)
	}
}

// A namespaced list and a Host with a path prefix (an API server behind a
// proxy that relocated it, as Rancher does) keep the prefix.
func TestPathPrefixAndNamespacedList(t *testing.T) {
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/k8s/clusters/c-1/api/v1/namespaces/shop/pods" {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no "+r.URL.Path)
			return
		}
		writeJSON(w, http.StatusOK, corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}})
	})
	cfg := a.config()
	cfg.Host += "/k8s/clusters/c-1"
	if _, err := newClient(t, cfg).ListPods(context.Background(), "shop", kubeapi.ListOptions{}); err != nil {
		t.Fatal(err)
	}
}

// The token is read from its file, and a rotated one is picked up (by
// client-go's transport, which re-reads the file).
func TestBearerTokenFile(t *testing.T) {
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}})
	})
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(a.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := a.config()
	cfg.BearerToken = ""
	cfg.BearerTokenFile = tf
	c := newClient(t, cfg)
	ns, err := c.GetNamespace(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels["team"] != "a" {
		t.Errorf("labels %v", ns.Labels)
	}
	// A wrong token is refused: the test server does check.
	a.setToken("rotated")
	if _, err := c.GetNamespace(context.Background(), "shop"); !apierrors.IsUnauthorized(err) {
		t.Fatalf("with a stale token: %v, want Unauthorized", err)
	}
}

func TestNoCredentialsIsUnauthorized(t *testing.T) {
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) { t.Error("unauthenticated request was served") })
	cfg := a.config()
	cfg.BearerToken = ""
	_, err := newClient(t, cfg).GetConfigMap(context.Background(), "crashdump", "crashdump-client")
	if !apierrors.IsUnauthorized(err) {
		t.Fatalf("GetConfigMap: %v, want Unauthorized", err)
	}
}

// Non-2xx answers become apierrors, from the API server's Status when it
// sent one, else from the status code.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name   string
		serve  func(w http.ResponseWriter)
		is     func(error) bool
		code   int32
		reason metav1.StatusReason
		want   string // in the message
	}{
		{name: "Status 404", serve: func(w http.ResponseWriter) {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, `configmaps "crashdump-client" not found`)
		}, is: apierrors.IsNotFound, code: 404, reason: metav1.StatusReasonNotFound, want: `configmaps "crashdump-client" not found`},
		{name: "Status 403", serve: func(w http.ResponseWriter) {
			writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden, `configmaps "crashdump-client" is forbidden: User "bob" cannot get resource "configmaps"`)
		}, is: apierrors.IsForbidden, code: 403, reason: metav1.StatusReasonForbidden, want: `User "bob" cannot get`},
		{name: "Status without code takes the HTTP one", serve: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests","reason":"TooManyRequests"}`)
		}, is: apierrors.IsTooManyRequests, code: 429, reason: metav1.StatusReasonTooManyRequests, want: "too many requests"},
		{name: "bare 401 from a proxy", serve: func(w http.ResponseWriter) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		}, is: apierrors.IsUnauthorized, code: 401, reason: metav1.StatusReasonUnauthorized, want: "configmaps"},
		{name: "bare 404", serve: func(w http.ResponseWriter) {
			http.Error(w, "404 page not found", http.StatusNotFound)
		}, is: apierrors.IsNotFound, code: 404, reason: metav1.StatusReasonNotFound, want: "crashdump-client"},
		{name: "bare 503 quotes the body on one line", serve: func(w http.ResponseWriter) {
			http.Error(w, "upstream connect error\nreset reason: overflow", http.StatusServiceUnavailable)
		}, is: apierrors.IsServiceUnavailable, code: 503, reason: metav1.StatusReasonServiceUnavailable, want: "upstream connect error reset reason: overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) { tt.serve(w) })
			_, err := newClient(t, a.config()).GetConfigMap(context.Background(), "crashdump", "crashdump-client")
			if err == nil {
				t.Fatal("no error")
			}
			if !tt.is(err) {
				t.Errorf("%v: wrong kind of error", err)
			}
			var se apierrors.APIStatus
			if !errors.As(err, &se) {
				t.Fatalf("%T is not an APIStatus", err)
			}
			if st := se.Status(); st.Code != tt.code || st.Reason != tt.reason {
				t.Errorf("status code %d reason %q, want %d %q", st.Code, st.Reason, tt.code, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// CreateEvent posts the event as JSON with its kind; a name that exists is
// AlreadyExists, whether the API server says so in a Status or a proxy only
// answers 409.
func TestCreateEvent(t *testing.T) {
	var exists atomic.Bool
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/events.k8s.io/v1/namespaces/shop/events" {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no "+r.Method+" "+r.URL.Path)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			writeStatus(w, http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, ct)
			return
		}
		var ev eventsv1.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		if exists.Swap(true) {
			writeStatus(w, http.StatusConflict, metav1.StatusReasonAlreadyExists, fmt.Sprintf("events.events.k8s.io %q already exists", ev.Name))
			return
		}
		ev.UID, ev.ResourceVersion = "uid-1", "7"
		writeJSON(w, http.StatusCreated, ev)
	})
	c := newClient(t, a.config())
	ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "api-0.1", Namespace: "shop"}, Reason: "CrashDumpUploaded",
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "api-0"}, Note: "n"}
	got, err := c.CreateEvent(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != "uid-1" || got.ResourceVersion != "7" || got.Note != "n" {
		t.Errorf("created %+v", got)
	}
	if ev.Kind != "" {
		t.Error("CreateEvent modified its argument")
	}
	_, bodies := a.requests()
	var sent map[string]any
	if err := json.Unmarshal([]byte(bodies[0]), &sent); err != nil {
		t.Fatal(err)
	}
	if sent["apiVersion"] != "events.k8s.io/v1" || sent["kind"] != "Event" || sent["reason"] != "CrashDumpUploaded" {
		t.Errorf("sent %s", bodies[0])
	}
	if _, err := c.CreateEvent(context.Background(), ev); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}
	a.setHandle(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "conflict", http.StatusConflict) })
	if _, err := c.CreateEvent(context.Background(), ev); !apierrors.IsAlreadyExists(err) {
		t.Errorf("bare 409 on POST: %v, want AlreadyExists", err)
	}
}

// A 2xx answer must be JSON of the kind asked for.
func TestBadAnswers(t *testing.T) {
	tests := []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  string
	}{
		{"not JSON", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, "<html><body>502 Bad Gateway</body></html>")
		}, "decode PodList"},
		{"HTML content type", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html></html>")
		}, "not JSON"},
		{"another kind", func(w http.ResponseWriter) {
			writeJSON(w, http.StatusOK, corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"}})
		}, "answer is a ConfigMap, not a PodList"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) { tt.serve(w) })
			_, err := newClient(t, a.config()).ListPods(context.Background(), "", kubeapi.ListOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "GET /api/v1/pods") {
				t.Fatalf("ListPods: %v, want an error naming the request and %q", err, tt.want)
			}
			var se apierrors.APIStatus
			if errors.As(err, &se) {
				t.Errorf("a bad 200 answer is not an API status error: %v", err)
			}
		})
	}
}

// 429 with Retry-After (API Priority and Fairness) is retried; without it,
// or for a 500 without it, the error is returned at once.
func TestRetryAfter(t *testing.T) {
	var mu sync.Mutex
	n := 0
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		if i == 1 {
			w.Header().Set("Retry-After", "1")
			writeStatus(w, http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, "too many requests, please try again later")
			return
		}
		writeJSON(w, http.StatusOK, corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	})
	c := newClient(t, a.config())
	start := time.Now()
	if _, err := c.GetNamespace(context.Background(), "shop"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %s, before Retry-After", d)
	}
	if reqs, _ := a.requests(); len(reqs) != 2 {
		t.Errorf("%d requests, want 2", len(reqs))
	}

	// A cancelled wait returns the API server's answer and the reason.
	a.setHandle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		writeStatus(w, http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, "too many requests")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.GetNamespace(ctx, "shop")
	if !apierrors.IsTooManyRequests(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetNamespace while throttled: %v", err)
	}

	a.setHandle(func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "etcdserver: request timed out")
	})
	before, _ := a.requests()
	if _, err := c.GetNamespace(context.Background(), "shop"); !apierrors.IsInternalError(err) {
		t.Errorf("500: %v", err)
	}
	if after, _ := a.requests(); len(after) != len(before)+1 {
		t.Errorf("a 500 without Retry-After was retried: %d requests", len(after)-len(before))
	}
}

// An API server that never answers is given up on after the timeout.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	cfg := a.config()
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := newClient(t, cfg).GetNamespace(context.Background(), "shop")
	if err == nil {
		t.Fatal("no error from a server that never answers")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %s", d)
	}
}

func TestNewRejectsBadHost(t *testing.T) {
	if _, err := kubeapi.New(&rest.Config{Host: "127.0.0.1:6443/with/path"}); err == nil || !strings.Contains(err.Error(), "API server address") {
		t.Fatalf("New: %v", err)
	}
}

func TestListConfigMapsLabelSelector(t *testing.T) {
	a := startAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/namespaces/monitoring/configmaps" {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
			return
		}
		writeJSON(w, http.StatusOK, corev1.ConfigMapList{TypeMeta: metav1.TypeMeta{Kind: "ConfigMapList", APIVersion: "v1"},
			Items: []corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "dumps-crashdump-client", Namespace: "monitoring"}, Data: map[string]string{"store": "s3://b"}}}})
	})
	list, err := newClient(t, a.config()).ListConfigMaps(context.Background(), "monitoring",
		kubeapi.ListOptions{LabelSelector: "app.kubernetes.io/component=client-config"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "dumps-crashdump-client" || list.Items[0].Data["store"] != "s3://b" {
		t.Fatalf("items = %+v", list.Items)
	}
	reqs, _ := a.requests()
	if len(reqs) != 1 || reqs[0].URL.RawQuery != "labelSelector=app.kubernetes.io%2Fcomponent%3Dclient-config" {
		t.Fatalf("requests %v", reqs)
	}
}
