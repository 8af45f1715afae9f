package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// sizeKeys are the values that become the agent's size flags
// (cmd/crashdump/bytesize.go), with the flag and whether a percentage of
// the filesystem is also a value.
var sizeKeys = []struct {
	key, flag string
	percent   bool
}{
	{"agent.partSize", "part-size", false},
	{"agent.uploadBuffer", "upload-buffer", false},
	{"agent.uploadSpill", "upload-spill", false},
	{"agent.maxDumpBytes", "max-dump-bytes", true},
	{"agent.keepFree", "keep-free", true},
	{"agent.maxUploadBandwidth", "max-upload-bandwidth", false},
}

// agentContainer renders the chart and returns the agent's container.
func agentContainer(t *testing.T, args ...string) corev1.Container {
	t.Helper()
	ds := one[*appsv1.DaemonSet](t, renderObjects(t, args...))
	return ds.Spec.Template.Spec.Containers[0]
}

// valuesFile writes y as a values file, for values --set cannot type (YAML
// numbers, which helm reads as float64).
func valuesFile(t *testing.T, y string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// setAll sets every size key (those taking a percentage only, with
// percentOnly) to v, as a string.
func setAll(v string, percentOnly bool) []string {
	var args []string
	for _, k := range sizeKeys {
		if k.percent || !percentOnly {
			args = append(args, "--set-string", k.key+"="+v)
		}
	}
	return args
}

// A size the agent refuses must not install: the agent would exit at start
// and the DaemonSet crash-loop on every node.
func TestChartRefusesBadSizes(t *testing.T) {
	for _, tc := range []struct {
		v           string
		percentOnly bool // refused where a percentage is a value (elsewhere too)
	}{
		{v: "10XB"}, // no such unit (the example)
		{v: "2Gi"},  // Kubernetes units are not sizes
		{v: "5Mi"},
		{v: "10kb"}, {v: "10mb"}, {v: "10K"}, // units are case-sensitive
		{v: "1EB"}, {v: "1PiB"}, // none above TB/TiB
		{v: "ten"}, {v: "-1"}, {v: "0x10"}, {v: "NaN"}, {v: "GiB"}, {v: "1.5.3MB"},
		{v: "100%", percentOnly: true}, {v: "150%", percentOnly: true}, {v: "-5%", percentOnly: true}, {v: "ten%", percentOnly: true},
	} {
		// The schema reports every key it refuses.
		_, err := helmTemplateErr(t, setAll(tc.v, tc.percentOnly)...)
		for _, k := range sizeKeys {
			if tc.percentOnly && !k.percent {
				continue
			}
			want := "'/" + strings.ReplaceAll(k.key, ".", "/") + "'"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s=%q: error %v, want one at %s", k.key, tc.v, err, want)
			}
		}
	}
	for _, k := range sizeKeys {
		if !k.percent {
			if _, err := helmTemplateErr(t, "--set-string", k.key+"=10%"); err == nil {
				t.Errorf("%s=10%%: accepted, but --%s takes no percentage", k.key, k.flag)
			}
		}
		// The syntax is fine, the agent still refuses: over 1<<62 bytes.
		_, err := helmTemplateErr(t, "--set-string", k.key+"=9999999TiB")
		if err == nil || !strings.Contains(err.Error(), k.key+` "9999999TiB": too large`) {
			t.Errorf("%s=9999999TiB: error %v, want too large", k.key, err)
		}
	}
}

// Every form the agent takes renders as its flag, verbatim; 0 (no limit,
// spilling off) is a value, not the agent's default.
func TestChartAcceptsSizes(t *testing.T) {
	for _, tc := range []struct {
		v           string
		percentOnly bool
	}{
		{v: "0"}, {v: "1024"}, {v: "40MiB"}, {v: "10GiB"}, {v: "500MB"}, {v: "1.5GiB"}, {v: "2 KiB"},
		{v: ".5TiB"}, {v: "5.GB"}, {v: "1e9"}, {v: "100B"}, {v: "3TB"}, {v: "7KB"},
		{v: "10%", percentOnly: true}, {v: "0%", percentOnly: true}, {v: "99.5%", percentOnly: true}, {v: "5 %", percentOnly: true},
	} {
		c := agentContainer(t, setAll(tc.v, tc.percentOnly)...)
		for _, k := range sizeKeys {
			if tc.percentOnly && !k.percent {
				continue
			}
			if want := "--" + k.flag + "=" + tc.v; !slices.Contains(c.Args, want) {
				t.Errorf("%s=%q: args %v, want %s", k.key, tc.v, c.Args, want)
			}
		}
	}
	// Numbers: --set types 0 as an integer, a values file gives float64.
	var set0, file0, fileBig []string
	y0, yBig := "agent:\n", "agent:\n"
	for _, k := range sizeKeys {
		set0 = append(set0, "--set", k.key+"=0")
		y0 += "  " + strings.TrimPrefix(k.key, "agent.") + ": 0\n"
		yBig += "  " + strings.TrimPrefix(k.key, "agent.") + ": 1073741824\n"
	}
	file0 = []string{"-f", valuesFile(t, y0)}
	fileBig = []string{"-f", valuesFile(t, yBig)}
	for _, tc := range []struct {
		what string
		args []string
		v    string
	}{
		{"--set 0", set0, "0"}, {"0 in a values file", file0, "0"}, {"1073741824 in a values file", fileBig, "1073741824"},
	} {
		c := agentContainer(t, tc.args...)
		for _, k := range sizeKeys {
			if want := "--" + k.flag + "=" + tc.v; !slices.Contains(c.Args, want) {
				t.Errorf("%s %s: args %v, want %s", k.key, tc.what, c.Args, want)
			}
		}
	}
	// Empty and null keep the agent's default.
	var null []string
	for _, k := range sizeKeys {
		null = append(null, "--set", k.key+"=null")
	}
	for _, args := range [][]string{setAll("", false), null} {
		for _, a := range agentContainer(t, args...).Args {
			for _, k := range sizeKeys {
				if strings.HasPrefix(a, "--"+k.flag+"=") {
					t.Errorf("%s (%v): %s passed, want the agent's default", k.key, args, a)
				}
			}
		}
	}
}

// Memory and CPU follow Kubernetes quantity syntax, and a memory quantity
// needs a unit: 192 is 192 bytes, which the agent cannot run in.
func TestChartRefusesBadResources(t *testing.T) {
	for _, tc := range []struct {
		flag, set, want string
	}{
		{"--set", "resources.limits.memory=192", "/resources/limits/memory"}, // the example
		{"--set-string", "resources.limits.memory=192", "/resources/limits/memory"},
		{"--set", "resources.requests.memory=192", "/resources/requests/memory"},
		{"--set-string", "resources.limits.memory=201326592", "/resources/limits/memory"},
		{"--set-string", "resources.limits.memory=192MiB", "/resources/limits/memory"}, // a size, not a quantity
		{"--set-string", "resources.limits.memory=192mi", "/resources/limits/memory"},
		{"--set-string", "resources.limits.memory=192m", "/resources/limits/memory"}, // millibytes
		{"--set-string", "resources.limits.memory=2e8", "/resources/limits/memory"},
		{"--set-string", "resources.limits.memory=1.5 Gi", "/resources/limits/memory"},
		{"--set-string", "resources.limits.memory=", "/resources/limits/memory"},
		{"--set-string", "resources.limits.cpu=250mm", "/resources/limits/cpu"},
		{"--set-string", "resources.limits.cpu=2Gi", "/resources/limits/cpu"},
		{"--set-string", "resources.requests.cpu=half", "/resources/requests/cpu"},
		{"--set-string", "resources.limits.ephemeral-storage=1GB", "/resources/limits/ephemeral-storage"},
		{"--set-string", "resources.limit.memory=192Mi", "'limit'"},
		{"--set-string", "appVolumes.capacity=10GiB", "/appVolumes/capacity"},
		// The quantity is right but 85% of it is under 1MiB.
		{"--set-string", "resources.limits.memory=1024Ki", "resources.limits.memory 1024Ki is 1048576 bytes"},
		// Go refuses a GOMEMLIMIT of 8EiB or more, and the agent would not start.
		{"--set-string", "resources.limits.memory=10Ei", "resources.limits.memory 10Ei: GOMEMLIMIT"},
	} {
		_, err := helmTemplateErr(t, tc.flag, tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: error %v, want one mentioning %q", tc.flag, tc.set, err, tc.want)
		}
	}
	for _, set := range []string{
		"resources.limits.cpu=1", "resources.limits.cpu=0.5", "resources.limits.cpu=1500m",
		"resources.limits.ephemeral-storage=1Gi", "appVolumes.capacity=10Gi", "appVolumes.capacity=10G",
	} {
		if _, err := helmTemplateErr(t, "--set", set); err != nil {
			t.Errorf("--set %s: %v", set, err)
		}
	}
}

// goMemLimit is the agent's GOMEMLIMIT, "" when it has none; it fails t if
// there are several.
func goMemLimit(t *testing.T, c corev1.Container) string {
	t.Helper()
	var vals []string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			vals = append(vals, e.Value)
		}
	}
	if len(vals) > 1 {
		t.Errorf("GOMEMLIMIT set %d times: %v", len(vals), vals)
	}
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// Every memory limit the chart takes gives the agent a GOMEMLIMIT of
// goMemLimitPercent of it, in whole MiB rounded down: never silently none.
func TestChartGoMemLimit(t *testing.T) {
	for _, tc := range []struct {
		mem, pct, want string
	}{
		{"192Mi", "", "163MiB"}, // the default: 85% of 192MiB is 163.2MiB
		{"256Mi", "", "217MiB"},
		{"1Gi", "", "870MiB"},
		{"1.5Gi", "", "1305MiB"},
		{"0.5Gi", "", "435MiB"},
		{".25Gi", "", "217MiB"},
		{"2Ti", "", "1782579MiB"},
		{"262144Ki", "", "217MiB"},
		{"512M", "", "415MiB"}, // 512e6 bytes
		{"1G", "", "810MiB"},
		{"1.5G", "", "1215MiB"},
		{"500000k", "", "405MiB"},
		{"1Gi", "50", "512MiB"},
		{"1Gi", "100", "1024MiB"},
		{"8191Pi", "100", "8795019280384MiB"}, // just under 8EiB, the most Go takes
		{"192Mi", "0", ""},
	} {
		args := []string{"--set-string", "resources.limits.memory=" + tc.mem + ",resources.requests.memory=" + tc.mem}
		if tc.pct != "" {
			args = append(args, "--set", "goMemLimitPercent="+tc.pct)
		}
		if got := goMemLimit(t, agentContainer(t, args...)); got != tc.want {
			t.Errorf("limits.memory %s, goMemLimitPercent %q: GOMEMLIMIT %q, want %q", tc.mem, tc.pct, got, tc.want)
		}
	}
	// A values file reads the quantity as YAML gives it.
	f := valuesFile(t, "resources:\n  limits:\n    memory: 1.5Gi\n  requests:\n    memory: 1.5Gi\n")
	if got := goMemLimit(t, agentContainer(t, "-f", f)); got != "1305MiB" {
		t.Errorf("limits.memory 1.5Gi in a values file: GOMEMLIMIT %q, want 1305MiB", got)
	}
	// The user's own GOMEMLIMIT is kept, and is the only one.
	c := agentContainer(t, "--set", "agent.extraEnv[0].name=GOMEMLIMIT,agent.extraEnv[0].value=100MiB")
	if got := goMemLimit(t, c); got != "100MiB" {
		t.Errorf("GOMEMLIMIT in agent.extraEnv: GOMEMLIMIT %q, want theirs, 100MiB", got)
	}
	// Without a memory limit there is nothing to take a share of.
	c = agentContainer(t, "--set", "resources=null")
	if got := goMemLimit(t, c); got != "" {
		t.Errorf("no resources: GOMEMLIMIT %q, want none", got)
	}
	// Past the schema (helm --skip-schema-validation), the template still
	// refuses what it cannot turn into a GOMEMLIMIT rather than drop it.
	for _, tc := range []struct{ set, want string }{
		{"resources.limits.memory=192", "resources.limits.memory 192 is 192 bytes"},
		{"resources.limits.memory=2e8", `resources.limits.memory "2e8": GOMEMLIMIT cannot be derived`},
		{"resources.limits.memory=192MiB", `resources.limits.memory "192MiB": GOMEMLIMIT cannot be derived`},
	} {
		_, err := helmTemplateErr(t, "--skip-schema-validation", "--set-string", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--skip-schema-validation --set-string %s: error %v, want one mentioning %q", tc.set, err, tc.want)
		}
	}
}

// The schema's quantity patterns accept only what Kubernetes parses.
func TestChartQuantityPatterns(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	type prop struct {
		Pattern              string          `json:"pattern"`
		Properties           map[string]prop `json:"properties"`
		AdditionalProperties json.RawMessage `json:"additionalProperties"`
	}
	var s prop
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	patterns := map[string]string{"appVolumes.capacity": s.Properties["appVolumes"].Properties["capacity"].Pattern}
	for _, rl := range []string{"limits", "requests"} {
		r := s.Properties["resources"].Properties[rl]
		var other prop
		if err := json.Unmarshal(r.AdditionalProperties, &other); err != nil {
			t.Fatalf("resources.%s.additionalProperties: %v", rl, err)
		}
		patterns["resources."+rl+".cpu"] = r.Properties["cpu"].Pattern
		patterns["resources."+rl+".memory"] = r.Properties["memory"].Pattern
		patterns["resources."+rl+".*"] = other.Pattern
	}
	var corpus []string
	for _, n := range []string{"0", "1", "192", "1.5", ".5", "5.", "+1", "-1", "1.5.3", ".", "", "1e3x"} {
		for _, u := range []string{"", "m", "k", "K", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "ki", "mi",
			"MiB", "GB", "e3", "E3", "e-3", "e1.5", "n", "u", " Mi", "Mi "} {
			corpus = append(corpus, n+u)
		}
	}
	for key, p := range patterns {
		if p == "" {
			t.Errorf("%s: no pattern in values.schema.json", key)
			continue
		}
		re := regexp.MustCompile(p)
		for _, v := range corpus {
			if !re.MatchString(v) {
				continue
			}
			if _, err := resource.ParseQuantity(v); err != nil {
				t.Errorf("%s %q: the schema accepts it, Kubernetes refuses it: %v", key, v, err)
			}
			if strings.HasSuffix(key, ".memory") && !regexp.MustCompile(`[0-9.](Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)$`).MatchString(v) {
				t.Errorf("%s %q: accepted without a unit of bytes", key, v)
			}
		}
	}
}
