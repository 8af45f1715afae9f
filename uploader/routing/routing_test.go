package routing

import (
	"strings"
	"testing"
)

const good = `# tenants
destinations:
  - name: team-a
    store: s3://team-a-dumps/prod
    region: eu-west-1
  - name: team-b
    store: s3://team-b-dumps
    sse: aws:kms
    sseKMSKeyID: alias/team-b
routes:
  - namespaces: [team-a, team-a-dev]
    destination: team-a
  - namespaceSelector:
      matchLabels: {tenant: b}
      matchExpressions:
        - {key: env, operator: NotIn, values: [sandbox]}
    destination: team-b
default: default
`

func TestParseAndRoute(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Destinations) != 2 || len(c.Routes) != 2 || !c.UsesSelectors {
		t.Fatalf("parsed %+v", c)
	}
	if c.Destinations[1].Line != 6 || c.Routes[1].Line != 13 {
		t.Errorf("lines %d %d", c.Destinations[1].Line, c.Routes[1].Line)
	}
	tests := []struct {
		ns     string
		labels map[string]string
		want   string
	}{
		{"team-a", nil, "team-a"},
		{"team-a-dev", map[string]string{"tenant": "b"}, "team-a"}, // first route wins
		{"shop", map[string]string{"tenant": "b"}, "team-b"},
		{"shop", map[string]string{"tenant": "b", "env": "sandbox"}, "default"},
		{"shop", nil, "default"}, // labels unknown: selectors cannot match
		{"", nil, "default"},     // unattributed
		{"team-c", nil, "default"},
	}
	for _, tc := range tests {
		if got := c.Route(tc.ns, tc.labels); got != tc.want {
			t.Errorf("Route(%q, %v) = %q, want %q", tc.ns, tc.labels, got, tc.want)
		}
	}
}

// TestBadConfigNamesTheLine: every mistake is refused at start with the
// line it is on.
func TestBadConfigNamesTheLine(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"unknown top-level field", "destinations: []\nroute: []\n", "line 2: unknown field \"route\""},
		{"typo in a destination", "destinations:\n  - name: a\n    store: s3://a\n    regoin: x\n", "line 4: unknown field \"regoin\""},
		{"undefined destination", "destinations:\n  - name: a\n    store: s3://a\nroutes:\n  - namespaces: [x]\n    destination: b\n", "line 6: destination \"b\" is not defined"},
		{"bad store", "destinations:\n  - name: a\n    store: gs://a\n", "line 2: destination \"a\""},
		{"duplicate destination", "destinations:\n  - name: a\n    store: s3://a\n  - name: a\n    store: s3://b\n", "line 4: destination \"a\" already defined on line 2"},
		{"reserved name", "destinations:\n  - name: default\n    store: s3://a\n", "line 2: destination name \"default\" is reserved"},
		{"bad namespace", "routes:\n  - namespaces: [Team_A]\n    destination: default\n", "line 2: \"Team_A\" is not a namespace name"},
		{"namespace routed twice", "routes:\n  - namespaces: [a]\n    destination: default\n  - namespaces: [a]\n    destination: default\n", "line 4: namespace \"a\" already routed on line 2"},
		{"route matches nothing", "routes:\n  - destination: default\n", "line 2: route matches nothing"},
		{"bad selector", "routes:\n  - namespaceSelector:\n      matchExpressions:\n        - {key: a, operator: Sometimes}\n    destination: default\n", "line 3: namespaceSelector"},
		{"bad sse", "destinations:\n  - name: a\n    store: s3://a\n    sse: rot13\n", "line 2: destination \"a\": sse \"rot13\""},
		{"bad role", "destinations:\n  - name: a\n    store: s3://a\n    roleARN: admin\n", "line 2: destination \"a\": roleARN"},
		{"role name too long", "destinations:\n  - name: a\n    store: s3://a\n    roleARN: arn:aws:iam::123456789012:role/" + strings.Repeat("r", 513) + "\n", "line 2: destination \"a\": roleARN"},
		{"namespace too long", "routes:\n  - namespaces: [" + strings.Repeat("n", 64) + "]\n    destination: default\n", "is not a namespace name"},
		{"undefined default", "default: nowhere\n", "line 1: default destination \"nowhere\" is not defined"},
		{"not yaml", "destinations: [\n", "not valid YAML"},
		{"not a mapping", "- a\n", "line 1"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.config))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestNameValidation(t *testing.T) {
	for _, tc := range []struct {
		check func(string) bool
		in    string
		want  bool
	}{
		{validRoleARN, "arn:aws:iam::123456789012:role/crashdump-team-b", true},
		{validRoleARN, "arn:aws-cn:iam::123456789012:role/path/to/Role_1+=,.@-", true},
		{validRoleARN, "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 512), true},
		{validRoleARN, "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 513), false},
		{validRoleARN, "arn:aws:iam::12345678901:role/short-account", false},
		{validRoleARN, "arn:aws:iam::123456789012:user/alice", false},
		{validDNSLabel, "team-a", true},
		{validDNSLabel, strings.Repeat("a", 63), true},
		{validDNSLabel, strings.Repeat("a", 64), false},
		{validDNSLabel, "-a", false},
		{validSecretRef, "creds.team-a", true},
		{validSecretRef, strings.Repeat("s", 253), true},
		{validSecretRef, strings.Repeat("s", 254), false},
		{validSecretRef, "Creds", false},
	} {
		if got := tc.check(tc.in); got != tc.want {
			t.Errorf("%.60q: valid=%v, want %v", tc.in, got, tc.want)
		}
	}
}
