package pods_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/crashdump-io/crashdump/collector/kubeapi"
	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
)

const node = "node-1"

// testPods are two namespaces with the same pod name on one node, and more.
func testPods() []podstest.Pod {
	return []podstest.Pod{
		{Namespace: "shop", Name: "api-7d9f8c6b5-x2k4p", UID: podstest.UID("shop api"), Node: node,
			Labels: map[string]string{"app": "api", "pod-template-hash": "7d9f8c6b5"}, OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5",
			Containers: []podstest.Container{{Name: "api", Image: "registry.example.com/shop/api:1.4.2",
				ID: "containerd://" + podstest.Hex64("shop api run"), LastID: "containerd://" + podstest.Hex64("shop api crashed"), RestartCount: 1}}},
		{Namespace: "billing", Name: "api-7d9f8c6b5-x2k4p", UID: podstest.UID("billing api"), Node: node,
			Labels: map[string]string{"app": "api", "pod-template-hash": "7d9f8c6b5"}, OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5",
			Containers: []podstest.Container{{Name: "api", Image: "registry.example.com/billing/api:2.0.0",
				ID: "containerd://" + podstest.Hex64("billing api run")}}},
	}
}

func fastRetry() pods.Retry { return pods.Retry{Attempts: 2, Backoff: time.Millisecond} }

func TestKubeletSource(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		token    string // "" = the right one
		noCA     bool   // no CA file: the self-signed cert must be refused
		insecure bool
		down     bool
		want     int    // pods, when no error
		reason   string // failure reason, when an error is expected
	}{
		{name: "lists pods", want: 2},
		{name: "insecure skip verify when asked", noCA: true, insecure: true, want: 2},
		{name: "wrong token", token: "not-the-token", reason: pods.FailureUnauthorized},
		{name: "rejected token", mode: podstest.Unauthorized, reason: pods.FailureUnauthorized},
		{name: "server error", mode: podstest.Fail500, reason: pods.FailureServerError},
		{name: "garbage", mode: podstest.Garbage, reason: pods.FailureBadResponse},
		{name: "json but not a pod list", mode: podstest.EmptyObject, reason: pods.FailureBadResponse},
		{name: "unverified certificate", noCA: true, reason: pods.FailureUnreachable},
		{name: "kubelet down", down: true, reason: pods.FailureUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := podstest.StartKubelet(t, testPods()...)
			k.SetMode(tt.mode)
			tokenFile := k.TokenFile
			if tt.token != "" {
				tokenFile = writeTemp(t, "token", tt.token)
			}
			cfg := pods.KubeletConfig{URL: k.URL, TokenFile: tokenFile, CAFile: k.CAFile, Insecure: tt.insecure,
				UserAgent: "crashdump/test", Timeout: 5 * time.Second, Retry: fastRetry()}
			if tt.noCA {
				cfg.CAFile = ""
			}
			src, err := pods.NewKubelet(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.down {
				k.Close()
			}
			got, err := src.List(context.Background())
			if tt.reason != "" {
				if err == nil {
					t.Fatalf("List: got %d pods, want an error (%s)", len(got), tt.reason)
				}
				if r := pods.FailureReason(err); r != tt.reason {
					t.Errorf("FailureReason(%v) = %q, want %q", err, r, tt.reason)
				}
				if tok := k.Token(); strings.Contains(err.Error(), tok) {
					t.Errorf("error %q contains the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("got %d pods, want %d", len(got), tt.want)
			}
			if got[0].Status.ContainerStatuses[0].LastTerminationState.Terminated == nil {
				t.Error("status lost in transit: no lastState.terminated")
			}
			if ua := k.UserAgents(); len(ua) == 0 || !strings.HasPrefix(ua[0], "crashdump/test") {
				t.Errorf("user agent %q, want crashdump/test", ua)
			}
		})
	}
}

func TestKubeletRetriesTransientFailure(t *testing.T) {
	k := podstest.StartKubelet(t, testPods()...)
	k.SetMode(podstest.Fail500)
	src, err := pods.NewKubelet(pods.KubeletConfig{URL: k.URL, TokenFile: k.TokenFile, CAFile: k.CAFile,
		Retry: pods.Retry{Attempts: 3, Backoff: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.List(context.Background()); err == nil {
		t.Fatal("List succeeded against a failing kubelet")
	}
	if n := k.Requests(); n != 3 {
		t.Errorf("%d requests, want 3 attempts", n)
	}
}

// A rotated service account token is used at once: the file is read for
// every request.
func TestKubeletTokenRotation(t *testing.T) {
	k := podstest.StartKubelet(t, testPods()...)
	src, err := pods.NewKubelet(pods.KubeletConfig{URL: k.URL, TokenFile: k.TokenFile, CAFile: k.CAFile, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	k.Rotate(t, "rotated-token-2")
	if _, err := src.List(context.Background()); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}

func TestNewKubeletConfigErrors(t *testing.T) {
	k := podstest.StartKubelet(t)
	tests := []struct {
		name string
		cfg  pods.KubeletConfig
		want string
	}{
		{"missing token file", pods.KubeletConfig{URL: k.URL, TokenFile: "/nonexistent/token", CAFile: k.CAFile}, "/nonexistent/token"},
		{"empty token file", pods.KubeletConfig{URL: k.URL, TokenFile: writeTemp(t, "token", "\n"), CAFile: k.CAFile}, "empty"},
		{"missing CA", pods.KubeletConfig{URL: k.URL, TokenFile: k.TokenFile, CAFile: "/nonexistent/ca.crt"}, "/nonexistent/ca.crt"},
		{"CA and insecure", pods.KubeletConfig{URL: k.URL, TokenFile: k.TokenFile, CAFile: k.CAFile, Insecure: true}, "exclude"},
		{"not a URL", pods.KubeletConfig{URL: "node-1:10250", TokenFile: k.TokenFile}, "https://"},
		{"plain HTTP would expose the token", pods.KubeletConfig{URL: "http://127.0.0.1:10255", TokenFile: k.TokenFile}, "https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pods.NewKubelet(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewKubelet: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func apiClient(t *testing.T, a *podstest.APIServer, token string) *kubeapi.Client {
	t.Helper()
	c, err := kubeapi.New(&rest.Config{Host: a.URL, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: a.CAData}, UserAgent: "crashdump/test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAPIServerSource(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		node   string
		token  string
		want   int
		reason string
	}{
		{name: "lists the node's pods", want: 2},
		{name: "wrong token", token: "nope", reason: pods.FailureUnauthorized},
		{name: "server error", mode: podstest.Fail500, reason: pods.FailureServerError},
		{name: "garbage", mode: podstest.Garbage, reason: pods.FailureBadResponse},
		{name: "another node's selector is refused", node: "node-2", reason: pods.FailureServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := podstest.StartAPIServer(t, node, testPods()...)
			a.SetMode(tt.mode)
			tok := a.Token()
			if tt.token != "" {
				tok = tt.token
			}
			n := node
			if tt.node != "" {
				n = tt.node
			}
			src, err := pods.NewAPIServer(apiClient(t, a, tok), n, fastRetry())
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.List(context.Background())
			if tt.reason != "" {
				if err == nil {
					t.Fatalf("List: got %d pods, want an error", len(got))
				}
				if r := pods.FailureReason(err); r != tt.reason {
					t.Errorf("FailureReason(%v) = %q, want %q", err, r, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("got %d pods, want %d", len(got), tt.want)
			}
			q := a.Queries()
			if len(q) == 0 {
				t.Fatal("no request")
			}
			v, err := url.ParseQuery(q[0])
			if err != nil {
				t.Fatal(err)
			}
			if v.Get("fieldSelector") != "spec.nodeName="+node || v.Get("resourceVersion") != "0" {
				t.Errorf("query %q: want fieldSelector=spec.nodeName=%s and resourceVersion=0", q[0], node)
			}
			if !strings.Contains(q[0], "fieldSelector=spec.nodeName%3D"+node) {
				t.Errorf("query %q is not encoded as the API server expects", q[0])
			}
		})
	}
}

func TestFailureReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&pods.StatusError{Code: 401}, pods.FailureUnauthorized},
		{&pods.StatusError{Code: 403}, pods.FailureUnauthorized},
		{&pods.StatusError{Code: 503}, pods.FailureServerError},
		{&pods.BadResponseError{Reason: "x"}, pods.FailureBadResponse},
		{&url.Error{Op: "Get", URL: "https://x", Err: errors.New("connection refused")}, pods.FailureUnreachable},
		{context.DeadlineExceeded, pods.FailureUnreachable},
	}
	for _, tt := range tests {
		if got := pods.FailureReason(tt.err); got != tt.want {
			t.Errorf("FailureReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
