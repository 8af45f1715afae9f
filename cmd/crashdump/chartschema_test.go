package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestChartSizePatternsMatchFlags: the Helm chart's schema patterns for the
// values that become size flags accept only what the flags parse, so a
// value the agent would refuse at start (and crash-loop on) never installs.
// Sizes over 1<<62 match the pattern; the chart's template refuses those
// (deploy/sizes_test.go).
func TestChartSizePatternsMatchFlags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "crashdump", "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Agent struct {
				Properties map[string]struct {
					Pattern string `json:"pattern"`
				} `json:"properties"`
			} `json:"agent"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	sizeOnly := func(v string) error { var b byteSize; return b.Set(v) }
	withPercent := func(v string) error { _, _, err := sizeOrPercent("x", v); return err }
	keys := map[string]func(string) error{
		"partSize": sizeOnly, "uploadBuffer": sizeOnly, "uploadSpill": sizeOnly, "maxUploadBandwidth": sizeOnly,
		"maxDumpBytes": withPercent, "keepFree": withPercent,
	}
	var corpus []string
	for _, n := range []string{"", "0", "1", "10", "99", "100", "1024", ".5", "5.", "1.5", "99.9", "1e3", "1E+3", "2e-1",
		"-1", "+1", "-0", "0x10", "0x1p4", "NaN", "Inf", "1_000", "1,5", "1.5.3", " 1", "e3", "."} {
		for _, u := range []string{"", "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", " GiB", "  GiB", " ",
			"Gi", "Mi", "Ki", "K", "k", "kB", "kb", "mb", "XB", "EB", "PB", "EiB", "iB", "b", "%", " %", "%%", "B%"} {
			corpus = append(corpus, n+u)
		}
	}
	for key, parse := range keys {
		p, ok := schema.Properties.Agent.Properties[key]
		if !ok || p.Pattern == "" {
			t.Errorf("agent.%s: no pattern in values.schema.json", key)
			continue
		}
		re, err := regexp.Compile(p.Pattern)
		if err != nil {
			t.Fatalf("agent.%s: %v", key, err)
		}
		for _, v := range corpus {
			if v == "" || !re.MatchString(v) {
				continue
			}
			if err := parse(v); err != nil && !strings.Contains(err.Error(), "too large") {
				t.Errorf("agent.%s %q: the schema accepts it, the agent refuses it: %v", key, v, err)
			}
		}
		// And the usual forms do install.
		for _, v := range []string{"0", "1024", "40MiB", "10GiB", "500MB", "1.5GiB", "2 KiB"} {
			if !re.MatchString(v) {
				t.Errorf("agent.%s %q: the agent takes it, the schema refuses it", key, v)
			}
		}
	}
}
