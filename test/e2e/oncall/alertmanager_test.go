package oncall

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAlertmanagerConfig(t *testing.T) {
	got := string(AlertmanagerConfig("http://127.0.0.1:1/", 500*time.Millisecond, time.Second, 0))
	for _, want := range []string{
		"receiver: webhook", "- alertname\n", "- node\n", "group_wait: 500ms", "group_interval: 1s",
		"url: http://127.0.0.1:1/", "send_resolved: true",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "repeat_interval") {
		t.Errorf("zero repeat interval rendered:\n%s", got)
	}
}

// A body as Alertmanager v0.35 sends it.
const webhookBody = `{"receiver":"webhook","status":"firing","notification_reason":"first notification","routeLabels":{},"alerts":[{"status":"firing",
"labels":{"alertname":"CrashdumpPodCrashed","namespace":"crashdump","pod":"crashdump-abcde","node":"n1","severity":"info"},
"annotations":{"summary":"A pod crashed"},"startsAt":"2025-01-02T03:04:05.678Z","endsAt":"0001-01-01T00:00:00Z",
"generatorURL":"http://127.0.0.1:9090/graph","fingerprint":"0123456789abcdef"}],
"groupLabels":{"alertname":"CrashdumpPodCrashed"},"commonLabels":{"alertname":"CrashdumpPodCrashed"},
"commonAnnotations":{"summary":"A pod crashed"},"externalURL":"http://127.0.0.1:9093","version":"4",
"groupKey":"{}:{alertname=\"CrashdumpPodCrashed\"}","truncatedAlerts":0}`

func TestWebhook(t *testing.T) {
	w, err := NewWebhook()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !strings.HasPrefix(w.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %s", w.URL())
	}
	post := func(body string) int {
		resp, err := http.Post(w.URL(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	crashed := func(a Alert) bool { return a.Labels["alertname"] == "CrashdumpPodCrashed" }

	// A waiter that is already waiting when the alert arrives.
	type result struct {
		a   Alert
		raw []byte
		err error
	}
	early := make(chan result)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		a, raw, err := w.Wait(ctx, crashed)
		early <- result{a, raw, err}
	}()

	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"version":"3","alerts":[]}`, http.StatusBadRequest},
		{`not json`, http.StatusBadRequest},
		{webhookBody, http.StatusOK},
	} {
		if got := post(tc.body); got != tc.code {
			t.Errorf("POST %.20s: %d, want %d", tc.body, got, tc.code)
		}
	}
	r := <-early
	if r.err != nil {
		t.Fatal(r.err)
	}
	// And one that asks after it arrived.
	a, raw, err := w.Wait(ctx, crashed)
	if err != nil {
		t.Fatal(err)
	}
	wantStart := time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
	if a.Status != "firing" || a.Labels["node"] != "n1" || a.Annotations["summary"] != "A pod crashed" ||
		!a.StartsAt.Equal(wantStart) || !a.EndsAt.IsZero() || a.Fingerprint != "0123456789abcdef" ||
		r.a.Fingerprint != a.Fingerprint || string(raw) != webhookBody {
		t.Errorf("alert %+v, raw %s", a, raw)
	}
	p := w.Received()[0].Payload
	if p.GroupLabels["alertname"] != "CrashdumpPodCrashed" || p.ExternalURL != "http://127.0.0.1:9093" || p.Receiver != "webhook" {
		t.Errorf("payload %+v", p)
	}

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	_, _, err = w.Wait(short, func(a Alert) bool { return a.Status == "resolved" })
	if err == nil || !strings.Contains(err.Error(), "1 deliveries (1 alerts)") || !strings.Contains(err.Error(), "rejected 2 bodies") {
		t.Errorf("Wait error %v", err)
	}
}

// TestAlertmanagerWebhook runs the real Alertmanager with AlertmanagerConfig
// and has an alert posted to its API reach the Webhook, firing and then
// resolved.
func TestAlertmanagerWebhook(t *testing.T) {
	am := tool(t, "E2E_ALERTMANAGER_BIN", "alertmanager")
	w, err := NewWebhook()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, AlertmanagerConfig(w.URL(), 100*time.Millisecond, 500*time.Millisecond, time.Hour), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePort(t)
	start(t, am, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.external-url=http://"+addr, "--cluster.listen-address=") // no gossip port on 0.0.0.0
	waitReady(t, "http://"+addr+"/-/ready")

	labels := map[string]string{"alertname": "CrashdumpTest", "namespace": "crashdump", "pod": "p", "node": "n1"}
	postAlert := func(endsAt time.Time) {
		t.Helper()
		body, _ := json.Marshal([]map[string]any{{"labels": labels, "annotations": map[string]string{"summary": "s"},
			"startsAt": time.Now().Add(-time.Minute), "endsAt": endsAt}})
		resp, err := http.Post("http://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, status := range []string{"firing", "resolved"} {
		ends := time.Now().Add(time.Hour)
		if status == "resolved" {
			ends = time.Now().Add(-time.Second)
		}
		postAlert(ends)
		a, raw, err := w.Wait(ctx, func(a Alert) bool { return a.Labels["alertname"] == "CrashdumpTest" && a.Status == status })
		if err != nil {
			t.Fatal(err)
		}
		if a.Labels["node"] != "n1" || a.Fingerprint == "" {
			t.Errorf("%s alert %+v", status, a)
		}
		t.Logf("%s: %s", status, raw)
	}
	p := w.Received()[0].Payload
	for _, l := range []string{"alertname", "namespace", "pod", "node"} {
		if p.GroupLabels[l] != labels[l] {
			t.Errorf("groupLabels %v lack %s", p.GroupLabels, l)
		}
	}
}
