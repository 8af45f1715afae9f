package podstest

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
)

// Failure modes of the fake kubelet and API server.
const (
	Serve        = ""             // answer the pod list
	Fail500      = "500"          // HTTP 500 with the kubelet's plain-text body
	Garbage      = "garbage"      // HTTP 200 with a body that is not JSON
	EmptyObject  = "empty-object" // HTTP 200 with "{}": JSON, but no PodList
	Unauthorized = "401"          // reject every token
)

// server is what the fake kubelet and API server share: a pod list that can
// change, a failure mode, a token check and request counting.
type server struct {
	mu       sync.Mutex
	pods     []corev1.Pod
	mode     string
	token    string
	requests int
	queries  []string
	agents   []string
}

func (s *server) SetPods(pods ...Pod) {
	items := make([]corev1.Pod, 0, len(pods))
	for _, p := range pods {
		items = append(items, p.Core())
	}
	s.mu.Lock()
	s.pods = items
	s.mu.Unlock()
}

// SetMode switches the failure mode (Serve, Fail500, Garbage, ...).
func (s *server) SetMode(mode string) {
	s.mu.Lock()
	s.mode = mode
	s.mu.Unlock()
}

// SetToken changes the token that is accepted (a rotation).
func (s *server) SetToken(tok string) {
	s.mu.Lock()
	s.token = tok
	s.mu.Unlock()
}

// Requests is how many pod list requests arrived (rejected ones included).
func (s *server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Queries are the raw query strings of the pod list requests.
func (s *server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// UserAgents are the User-Agent headers of the pod list requests.
func (s *server) UserAgents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.agents...)
}

// authorized checks the bearer token as the kubelet's and the API server's
// authenticators do, answering 401 with the body they send.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	tok, mode := s.token, s.mode
	s.mu.Unlock()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got != tok || mode == Unauthorized {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return false
	}
	return true
}

// servePods answers a pod list request according to the mode.
func (s *server) servePods(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.queries = append(s.queries, r.URL.RawQuery)
	s.agents = append(s.agents, r.UserAgent())
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	s.mu.Lock()
	mode := s.mode
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: append([]corev1.Pod{}, s.pods...)}
	s.mu.Unlock()
	switch mode {
	case Fail500:
		http.Error(w, "Internal Error: failed to get pods: rpc error: code = Unavailable", http.StatusInternalServerError)
		return
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>\n"))
		return
	case EmptyObject:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// Kubelet is an HTTPS kubelet serving GET /pods.
type Kubelet struct {
	server
	srv *httptest.Server
	// URL is the kubelet's base URL (https://127.0.0.1:<port>).
	URL string
	// CAFile holds the PEM certificate the kubelet serves.
	CAFile string
	// TokenFile holds the token the kubelet accepts.
	TokenFile string
}

// StartKubelet starts a kubelet on 127.0.0.1 serving pods; it stops at the
// end of the test.
func StartKubelet(t testing.TB, pods ...Pod) *Kubelet {
	t.Helper()
	k := &Kubelet{}
	k.token = "kubelet-test-token-" + Hex64(t.Name())[:16]
	k.SetPods(pods...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods", k.servePods)
	k.srv = httptest.NewTLSServer(mux)
	t.Cleanup(k.srv.Close)
	k.URL = k.srv.URL
	dir := t.TempDir()
	k.CAFile = filepath.Join(dir, "kubelet-ca.crt")
	writeFile(t, k.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw}))
	k.TokenFile = filepath.Join(dir, "token")
	writeFile(t, k.TokenFile, []byte(k.token))
	return k
}

// Token is the token the kubelet accepts now.
func (k *Kubelet) Token() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.token
}

// Rotate writes a new token into TokenFile and makes the kubelet accept
// only that one, as when the service account token is rotated.
func (k *Kubelet) Rotate(t testing.TB, tok string) {
	t.Helper()
	tmp := k.TokenFile + ".new"
	writeFile(t, tmp, []byte(tok+"\n"))
	if err := os.Rename(tmp, k.TokenFile); err != nil {
		t.Fatal(err)
	}
	k.SetToken(tok)
}

// Close stops the kubelet: connections are refused from now on.
func (k *Kubelet) Close() { k.srv.Close() }

// APIServer is an HTTPS API server that lists pods by node
// (GET /api/v1/pods?fieldSelector=spec.nodeName=<node>) and records
// events.k8s.io/v1 Events (POST /apis/events.k8s.io/v1/namespaces/<ns>/events)
// after validating them the way the API server does.
type APIServer struct {
	server
	srv *httptest.Server
	// Node is the only node whose pods are listed; other selectors get 400.
	Node   string
	URL    string
	CAData []byte

	evMu      sync.Mutex
	events    []eventsv1.Event
	evFail    int // answer the next evFail event POSTs with 500
	evPosts   int
	evArrived chan struct{}
	evGate    chan struct{} // when set, event POSTs wait for it to close
}

// StartAPIServer starts an API server on 127.0.0.1 for node.
func StartAPIServer(t testing.TB, node string, pods ...Pod) *APIServer {
	t.Helper()
	a := &APIServer{Node: node, evArrived: make(chan struct{}, 1000)}
	a.token = "apiserver-test-token-" + Hex64(t.Name())[:16]
	a.SetPods(pods...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", a.listPods)
	mux.HandleFunc("POST /apis/events.k8s.io/v1/namespaces/{ns}/events", a.createEvent)
	a.srv = httptest.NewTLSServer(mux)
	t.Cleanup(a.srv.Close)
	a.URL = a.srv.URL
	a.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw})
	return a
}

// Token is the token the API server accepts.
func (a *APIServer) Token() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token
}

// Kubeconfig writes a kubeconfig for this server and returns its path.
func (a *APIServer) Kubeconfig(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: agent
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: agent
current-context: test
`, a.URL, a.caFile(t), a.Token())
	writeFile(t, p, []byte(cfg))
	return p
}

func (a *APIServer) caFile(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "apiserver-ca.crt")
	writeFile(t, p, a.CAData)
	return p
}

func (a *APIServer) listPods(w http.ResponseWriter, r *http.Request) {
	// The agent must ask for its node only: a list of every pod in the
	// cluster from 500 agents would hurt the API server.
	if sel := r.URL.Query().Get("fieldSelector"); sel != "spec.nodeName="+a.Node {
		a.mu.Lock()
		a.requests++
		a.queries = append(a.queries, r.URL.RawQuery)
		a.mu.Unlock()
		status(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("this test server only lists pods of node %s, got fieldSelector %q", a.Node, sel))
		return
	}
	a.servePods(w, r)
}

// HoldEvents makes event POSTs wait (an API server that is slow to answer)
// until the returned release is called; release is also called at cleanup.
func (a *APIServer) HoldEvents(t testing.TB) (release func()) {
	gate := make(chan struct{})
	a.evMu.Lock()
	a.evGate = gate
	a.evMu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}

// SetEventFailures makes the next n event POSTs fail with 500.
func (a *APIServer) SetEventFailures(n int) {
	a.evMu.Lock()
	a.evFail = n
	a.evMu.Unlock()
}

// Events returns the events recorded so far.
func (a *APIServer) Events() []eventsv1.Event {
	a.evMu.Lock()
	defer a.evMu.Unlock()
	return append([]eventsv1.Event(nil), a.events...)
}

// EventPosts counts event POSTs, failed ones included.
func (a *APIServer) EventPosts() int {
	a.evMu.Lock()
	defer a.evMu.Unlock()
	return a.evPosts
}

// WaitPosts waits until n event POSTs arrived (answered or not).
func (a *APIServer) WaitPosts(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for a.EventPosts() < n {
		select {
		case <-a.evArrived:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %d event posts, have %d", timeout, n, a.EventPosts())
		}
	}
}

// WaitEvents waits until n events are recorded or timeout passes.
func (a *APIServer) WaitEvents(t testing.TB, n int, timeout time.Duration) []eventsv1.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if ev := a.Events(); len(ev) >= n {
			return ev
		}
		select {
		case <-a.evArrived:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %d events, have %d", timeout, n, len(a.Events()))
		}
	}
}

func (a *APIServer) createEvent(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	a.evMu.Lock()
	a.evPosts++
	fail := a.evFail > 0
	if fail {
		a.evFail--
	}
	gate := a.evGate
	a.evMu.Unlock()
	select {
	case a.evArrived <- struct{}{}:
	default:
	}
	if gate != nil {
		<-gate
	}
	if fail {
		status(w, http.StatusInternalServerError, "InternalError", "etcdserver: request timed out")
		return
	}
	// Package kubeapi sends JSON; the deserializer takes protobuf too, as
	// the API server does.
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		status(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	var ev eventsv1.Event
	if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, &ev); err != nil {
		status(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("decode %s: %v", r.Header.Get("Content-Type"), err))
		return
	}
	if msg := validateEvent(r.PathValue("ns"), &ev); msg != "" {
		status(w, http.StatusUnprocessableEntity, "Invalid", "Event.events.k8s.io is invalid: "+msg)
		return
	}
	ev.UID = types.UID(uuidFrom("event " + ev.Name))
	ev.ResourceVersion = "1"
	ev.CreationTimestamp = metav1.Now()
	a.evMu.Lock()
	a.events = append(a.events, ev)
	a.evMu.Unlock()
	select {
	case a.evArrived <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(&ev)
}

// validateEvent checks what the API server's events.k8s.io/v1 validation
// checks on create (pkg/apis/core/validation/events.go).
func validateEvent(ns string, ev *eventsv1.Event) string {
	var errs []string
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, msg)
		}
	}
	check(ev.Namespace == "" || ev.Namespace == ns, "metadata.namespace: does not match the request")
	check(ev.Name != "" && len(validation.IsDNS1123Subdomain(ev.Name)) == 0, "metadata.name: must be a DNS subdomain")
	check(!ev.EventTime.IsZero(), "eventTime: Required value")
	check(ev.Type == corev1.EventTypeNormal || ev.Type == corev1.EventTypeWarning, "type: Unsupported value")
	check(ev.ReportingController != "" && len(validation.IsQualifiedName(ev.ReportingController)) == 0, "reportingController: must be a qualified name")
	check(ev.ReportingInstance != "" && len(ev.ReportingInstance) <= 128, "reportingInstance: Required, at most 128 characters")
	check(ev.Action != "" && len(ev.Action) <= 128, "action: Required, at most 128 characters")
	check(ev.Reason != "" && len(ev.Reason) <= 128, "reason: Required, at most 128 characters")
	check(len(ev.Note) <= 1024, "note: at most 1kB")
	check(ev.Regarding.Namespace == ns, "regarding.namespace: does not match event.namespace")
	check(ev.DeprecatedSource.Component == "" && ev.DeprecatedSource.Host == "", "deprecatedSource: needs to be unset")
	check(ev.DeprecatedCount == 0 && ev.DeprecatedFirstTimestamp.IsZero() && ev.DeprecatedLastTimestamp.IsZero(), "deprecated*: needs to be unset")
	return strings.Join(errs, ", ")
}

// status writes a metav1.Status error as the API server does.
func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: metav1.StatusReason(reason), Code: int32(code),
	})
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
