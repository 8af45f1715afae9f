package oncall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"sigs.k8s.io/yaml"
)

// AlertmanagerConfig returns an alertmanager.yml that sends every alert to
// one webhook receiver, resolved notifications included, grouped the way
// the chart's alerts are meant to be routed (per agent pod and node). A
// zero duration keeps Alertmanager's default.
func AlertmanagerConfig(webhookURL string, groupWait, groupInterval, repeatInterval time.Duration) []byte {
	route := map[string]any{
		"receiver": "webhook",
		"group_by": []string{"alertname", "namespace", "pod", "node"},
	}
	for k, d := range map[string]time.Duration{"group_wait": groupWait, "group_interval": groupInterval, "repeat_interval": repeatInterval} {
		if d > 0 {
			route[k] = promDuration(d)
		}
	}
	cfg := map[string]any{
		"route": route,
		"receivers": []any{map[string]any{
			"name":            "webhook",
			"webhook_configs": []any{map[string]any{"url": webhookURL, "send_resolved": true}},
		}},
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		panic(err) // maps of strings and lists always marshal
	}
	return out
}

// promDuration formats d in Prometheus' duration syntax, which has no
// fractions (time.Duration.String gives 1.5s).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// Payload is Alertmanager's webhook body, version 4.
type Payload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"` // firing or resolved
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a webhook payload.
type Alert struct {
	Status       string            `json:"status"` // firing or resolved
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Received is one webhook delivery: decoded, and the body as sent, for the
// test's evidence.
type Received struct {
	Payload Payload
	Raw     []byte
}

// Webhook is an Alertmanager webhook receiver on 127.0.0.1, safe for
// concurrent use.
type Webhook struct {
	srv *http.Server
	url string

	mu       sync.Mutex
	received []Received
	rejected []string // bodies that were not version-4 payloads, for Wait's error
	// changed is closed (and replaced) on every delivery: Wait waits on it
	// together with its context, which a sync.Cond cannot do.
	changed chan struct{}
}

// NewWebhook starts a webhook receiver on a free port of 127.0.0.1.
func NewWebhook() (*Webhook, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w := &Webhook{url: "http://" + ln.Addr().String() + "/", changed: make(chan struct{})}
	w.srv = &http.Server{Handler: http.HandlerFunc(w.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = w.srv.Serve(ln) }() // returns ErrServerClosed after Close
	return w, nil
}

// URL is the address to put in the Alertmanager config.
func (w *Webhook) URL() string { return w.url }

// Close stops the server.
func (w *Webhook) Close() error { return w.srv.Close() }

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(rw, "POST only", http.StatusMethodNotAllowed)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, 16<<20))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	var p Payload
	err = json.Unmarshal(raw, &p)
	if err == nil && p.Version != "4" {
		err = fmt.Errorf("version %q, want 4", p.Version)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.rejected = append(w.rejected, fmt.Sprintf("%v: %.200s", err, raw))
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.received = append(w.received, Received{Payload: p, Raw: raw})
	close(w.changed)
	w.changed = make(chan struct{})
}

// Received returns the deliveries so far, oldest first.
func (w *Webhook) Received() []Received {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Received(nil), w.received...)
}

// Wait returns the first alert received (before or during the call) that
// match accepts, with the raw body of its delivery. When ctx ends first, the
// error says what did arrive.
func (w *Webhook) Wait(ctx context.Context, match func(Alert) bool) (Alert, []byte, error) {
	for seen := 0; ; {
		w.mu.Lock()
		for ; seen < len(w.received); seen++ {
			for _, a := range w.received[seen].Payload.Alerts {
				if match(a) {
					raw := w.received[seen].Raw
					w.mu.Unlock()
					return a, raw, nil
				}
			}
		}
		changed, alerts, rejected := w.changed, 0, w.rejected
		for _, r := range w.received {
			alerts += len(r.Payload.Alerts)
		}
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			err := fmt.Errorf("webhook: no matching alert among %d deliveries (%d alerts): %w", seen, alerts, ctx.Err())
			if len(rejected) > 0 {
				err = errors.Join(err, fmt.Errorf("webhook rejected %d bodies, last: %s", len(rejected), rejected[len(rejected)-1]))
			}
			return Alert{}, nil, err
		}
	}
}
