package pods

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Source lists the pods bound to this node. Implementations retry
// transient failures themselves, return an error that says what was being
// done, and are safe for concurrent use.
type Source interface {
	List(ctx context.Context) ([]corev1.Pod, error)
	// String names the source for logs, e.g. "kubelet https://node-1:10250".
	String() string
}

// Failure reasons of a list, the values of the failures metric's label.
const (
	FailureUnreachable  = "unreachable"  // connection refused, DNS, TLS, timeout
	FailureUnauthorized = "unauthorized" // 401 or 403: token or RBAC
	FailureServerError  = "server_error" // any other status than 200
	FailureBadResponse  = "bad_response" // 200 with a body that is not a PodList
	failureCanceled     = "canceled"     // the caller gave up; not counted as the source's fault
)

// failureReasons are pre-set to zero in the metrics.
var failureReasons = []string{FailureUnreachable, FailureUnauthorized, FailureServerError, FailureBadResponse}

// StatusError is a non-200 answer.
type StatusError struct {
	URL  string
	Code int
	// Body is the start of the response body, printable characters only.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body != "" {
		return fmt.Sprintf("GET %s: HTTP %d: %s", e.URL, e.Code, e.Body)
	}
	return fmt.Sprintf("GET %s: HTTP %d", e.URL, e.Code)
}

// BadResponseError is a 200 answer that is not a usable PodList.
type BadResponseError struct {
	URL    string
	Reason string
}

func (e *BadResponseError) Error() string {
	return fmt.Sprintf("GET %s: not a pod list: %s", e.URL, e.Reason)
}

// FailureReason classifies a List error into one of the Failure* values.
func FailureReason(err error) string {
	var se *StatusError
	var br *BadResponseError
	var ne net.Error
	var ue *url.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &br):
		return FailureBadResponse
	case errors.As(err, &se):
		if se.Code == 401 || se.Code == 403 {
			return FailureUnauthorized
		}
		return FailureServerError
	case apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err):
		return FailureUnauthorized
	case statusCode(err) != 0:
		return FailureServerError
	case errors.Is(err, context.Canceled):
		return failureCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne), errors.As(err, &ue):
		return FailureUnreachable
	}
	return FailureBadResponse
}

// statusCode is the HTTP status of an API server error (an apierrors
// APIStatus, as package kubeapi returns), 0 if none.
func statusCode(err error) int {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return int(s.Status().Code)
	}
	return 0
}

// retryable reports whether another attempt may succeed. A 401 is retried:
// client-go's token transport re-reads the (rotated) token file after one.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	code := statusCode(err)
	var se *StatusError
	if errors.As(err, &se) {
		code = se.Code
	}
	switch {
	case code == 0:
		return true // network trouble or a garbled answer
	case code == 401, code == 429, code >= 500:
		return true
	}
	return false
}

// Retry is how a source retries a failed list: Attempts tries in all, the
// n-th wait being Backoff·2ⁿ⁻¹ with full jitter.
type Retry struct {
	Attempts int           // default 3
	Backoff  time.Duration // default 250ms
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 3
	}
	if r.Backoff <= 0 {
		r.Backoff = 250 * time.Millisecond
	}
	return r
}

// do runs list until it succeeds, fails for good, or the attempts or ctx
// run out; the last error is returned.
func (r Retry) do(ctx context.Context, list func(context.Context) ([]corev1.Pod, error)) ([]corev1.Pod, error) {
	r = r.withDefaults()
	var err error
	for attempt := 0; attempt < r.Attempts; attempt++ {
		if attempt > 0 {
			d := r.Backoff << (attempt - 1)
			d = d/2 + rand.N(d/2+1)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		var pods []corev1.Pod
		pods, err = list(ctx)
		if err == nil {
			return pods, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// checkPods rejects a list whose items lack what every real pod has.
func checkPods(url string, pods []corev1.Pod) error {
	for i := range pods {
		p := &pods[i]
		if p.UID == "" || p.Name == "" || p.Namespace == "" {
			return &BadResponseError{URL: url, Reason: fmt.Sprintf("item %d has no uid, name or namespace", i)}
		}
	}
	return nil
}
