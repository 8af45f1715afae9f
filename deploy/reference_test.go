package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// agentFlagsFromReference reads the agent's flag names from the generated
// docs/configuration.md (which cmd/crashdump's tests keep equal to the real
// flags), so the chart can only pass flags the agent has.
func agentFlagsFromReference(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(repoFile("docs/configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## crashdump agent\n")
	if !ok {
		t.Fatal("docs/configuration.md has no crashdump agent section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| (?:`-[a-z]`, )?`--([a-z0-9-]+)` \\|").FindAllStringSubmatch(sec, -1) {
		flags[m[1]] = true
	}
	if len(flags) < 20 || !flags["dump-dir"] {
		t.Fatalf("read only %d agent flags from docs/configuration.md", len(flags))
	}
	return flags
}

// yamlStrict decodes YAML into v refusing duplicate and unknown fields.
func yamlStrict(y []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
