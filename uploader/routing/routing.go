// Package routing sends each tenant's dumps to its own destination: a small
// YAML config (--routing-config) maps namespaces, by name or by namespace
// label selector, to destinations (bucket, prefix, endpoint, region,
// encryption, credentials). Everything else goes to the default destination,
// the agent's --store. The config is validated completely at start-up, and
// every error names its line, so a bad config never half-applies.
//
// Example:
//
//	destinations:
//	  - name: team-a
//	    store: s3://team-a-dumps/prod
//	    region: eu-west-1
//	    credentialsSecret: team-a-s3   # files under --credentials-dir/team-a-s3/
//	  - name: team-b
//	    store: s3://team-b-dumps
//	    roleARN: arn:aws:iam::123456789012:role/crashdump-team-b
//	routes:
//	  - namespaces: [team-a, team-a-dev]
//	    destination: team-a
//	  - namespaceSelector:
//	      matchLabels: {tenant: team-b}
//	    destination: team-b
//	default: default
package routing

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/crashdump-io/crashdump/uploader/stores"
)

// DefaultDestination is the destination configured by the agent's flags.
const DefaultDestination = "default"

// Config is a parsed, validated routing config.
type Config struct {
	Destinations []Destination
	Routes       []Route
	// Default is the destination for dumps no route matches, and for dumps
	// not attributed to a namespace.
	Default string
	// UsesSelectors is set when a route needs namespace labels (the
	// API-server pod source).
	UsesSelectors bool
}

// Destination is where a tenant's dumps go. Empty fields inherit the
// agent's flags.
type Destination struct {
	Name        string
	Store       string // s3://bucket/prefix or file:///path
	Endpoint    string
	Region      string
	SSE         string
	SSEKMSKeyID string
	// CredentialsSecret names a Secret mounted under the agent's
	// --credentials-dir with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
	// (and optionally AWS_SESSION_TOKEN) files.
	CredentialsSecret string
	// RoleARN is assumed (STS) with the agent's own credentials, or the
	// secret's when both are given.
	RoleARN string
	Line    int
}

// Route maps namespaces to a destination.
type Route struct {
	Namespaces  []string
	Selector    labels.Selector // nil when routing by name
	Destination string
	Line        int
}

// Match reports whether the route takes a dump from namespace ns.
func (r Route) Match(ns string, nsLabels map[string]string) bool {
	for _, n := range r.Namespaces {
		if n == ns {
			return true
		}
	}
	return r.Selector != nil && nsLabels != nil && r.Selector.Matches(labels.Set(nsLabels))
}

// Route returns the destination for a dump from namespace ns ("" when not
// attributed) whose namespace has nsLabels (nil when unknown).
func (c *Config) Route(ns string, nsLabels map[string]string) string {
	if ns != "" {
		for _, r := range c.Routes {
			if r.Match(ns, nsLabels) {
				return r.Destination
			}
		}
	}
	return c.Default
}

var (
	// No counted repetitions ({0,61}): each compiles into a program that
	// many copies long, costing start-up time and memory in every agent.
	// Lengths are checked apart.
	dnsLabelRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	roleARNRE   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/([\w+=,.@/-]+)$`)
	secretRefRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// errAt is an error about the config at a line.
type errAt struct {
	line int
	msg  string
}

func (e errAt) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func at(n *yaml.Node, format string, args ...any) error {
	return errAt{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

// Load reads and validates the routing config at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("routing config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("routing config %s: %w", path, err)
	}
	return c, nil
}

// Parse validates a routing config.
func Parse(data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, at(&doc, "the config must be a mapping with destinations, routes and default")
	}
	c := &Config{Default: DefaultDestination}
	names := map[string]int{DefaultDestination: 0}
	var routesNode *yaml.Node
	var defaultNode *yaml.Node
	err := fields(doc.Content[0], map[string]func(v *yaml.Node) error{
		"destinations": func(v *yaml.Node) error {
			if v.Kind != yaml.SequenceNode {
				return at(v, "destinations must be a list")
			}
			for _, item := range v.Content {
				d, err := parseDestination(item)
				if err != nil {
					return err
				}
				if first, dup := names[d.Name]; dup {
					if d.Name == DefaultDestination {
						return at(item, "destination name %q is reserved for the agent's --store", d.Name)
					}
					return at(item, "destination %q already defined on line %d", d.Name, first)
				}
				names[d.Name] = d.Line
				c.Destinations = append(c.Destinations, d)
			}
			return nil
		},
		"routes":  func(v *yaml.Node) error { routesNode = v; return nil },
		"default": func(v *yaml.Node) error { defaultNode = v; return nil },
	})
	if err != nil {
		return nil, err
	}
	// Routes and default refer to destinations, which may come after them.
	if routesNode != nil {
		if routesNode.Kind != yaml.SequenceNode {
			return nil, at(routesNode, "routes must be a list")
		}
		claimed := map[string]int{}
		for _, item := range routesNode.Content {
			r, err := parseRoute(item, names)
			if err != nil {
				return nil, err
			}
			for _, ns := range r.Namespaces {
				if first, dup := claimed[ns]; dup {
					return nil, at(item, "namespace %q already routed on line %d", ns, first)
				}
				claimed[ns] = r.Line
			}
			c.UsesSelectors = c.UsesSelectors || r.Selector != nil
			c.Routes = append(c.Routes, r)
		}
	}
	if defaultNode != nil {
		if err := str(defaultNode, &c.Default); err != nil {
			return nil, err
		}
		if _, ok := names[c.Default]; !ok {
			return nil, at(defaultNode, "default destination %q is not defined", c.Default)
		}
	}
	return c, nil
}

// fields walks a mapping, calling one handler per known key and refusing
// unknown keys (a typo must not silently route a tenant's dumps elsewhere).
func fields(m *yaml.Node, handlers map[string]func(v *yaml.Node) error) error {
	if m.Kind != yaml.MappingNode {
		return at(m, "expected a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		h, ok := handlers[k.Value]
		if !ok {
			known := make([]string, 0, len(handlers))
			for name := range handlers {
				known = append(known, name)
			}
			return at(k, "unknown field %q (known: %s)", k.Value, strings.Join(slices.Sorted(slices.Values(known)), ", "))
		}
		if seen[k.Value] {
			return at(k, "field %q given twice", k.Value)
		}
		seen[k.Value] = true
		if err := h(v); err != nil {
			return err
		}
	}
	return nil
}

func str(v *yaml.Node, dst *string) error {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return at(v, "expected a string")
	}
	*dst = v.Value
	return nil
}

func strField(dst *string) func(v *yaml.Node) error {
	return func(v *yaml.Node) error { return str(v, dst) }
}

func parseDestination(n *yaml.Node) (Destination, error) {
	d := Destination{Line: n.Line}
	err := fields(n, map[string]func(v *yaml.Node) error{
		"name":              strField(&d.Name),
		"store":             strField(&d.Store),
		"endpoint":          strField(&d.Endpoint),
		"region":            strField(&d.Region),
		"sse":               strField(&d.SSE),
		"sseKMSKeyID":       strField(&d.SSEKMSKeyID),
		"credentialsSecret": strField(&d.CredentialsSecret),
		"roleARN":           strField(&d.RoleARN),
	})
	if err != nil {
		return d, err
	}
	switch {
	case !validDNSLabel(d.Name):
		return d, at(n, "destination name %q: want lower-case letters, digits and '-' (it becomes a metrics label)", d.Name)
	case d.Store == "":
		return d, at(n, "destination %q: store is required (s3://bucket/prefix or file:///path)", d.Name)
	}
	if _, err := stores.Parse(d.Store); err != nil {
		return d, at(n, "destination %q: %v", d.Name, err)
	}
	switch d.SSE {
	case "", "AES256", "aws:kms":
	default:
		return d, at(n, "destination %q: sse %q: want AES256 or aws:kms", d.Name, d.SSE)
	}
	if d.SSEKMSKeyID != "" && d.SSE != "aws:kms" {
		return d, at(n, "destination %q: sseKMSKeyID needs sse: aws:kms", d.Name)
	}
	if d.RoleARN != "" && !validRoleARN(d.RoleARN) {
		return d, at(n, "destination %q: roleARN %q is not an IAM role ARN", d.Name, d.RoleARN)
	}
	if d.CredentialsSecret != "" && !validSecretRef(d.CredentialsSecret) {
		return d, at(n, "destination %q: credentialsSecret %q is not a Secret name", d.Name, d.CredentialsSecret)
	}
	return d, nil
}

func parseRoute(n *yaml.Node, names map[string]int) (Route, error) {
	r := Route{Line: n.Line}
	var selNode *yaml.Node
	var destNode *yaml.Node
	err := fields(n, map[string]func(v *yaml.Node) error{
		"namespaces": func(v *yaml.Node) error {
			if v.Kind != yaml.SequenceNode {
				return at(v, "namespaces must be a list")
			}
			for _, item := range v.Content {
				var ns string
				if err := str(item, &ns); err != nil {
					return err
				}
				if !validDNSLabel(ns) {
					return at(item, "%q is not a namespace name", ns)
				}
				r.Namespaces = append(r.Namespaces, ns)
			}
			return nil
		},
		"namespaceSelector": func(v *yaml.Node) error { selNode = v; return nil },
		"destination":       func(v *yaml.Node) error { destNode = v; return str(v, &r.Destination) },
	})
	if err != nil {
		return r, err
	}
	switch {
	case destNode == nil:
		return r, at(n, "route without a destination")
	case len(r.Namespaces) == 0 && selNode == nil:
		return r, at(n, "route matches nothing: give namespaces or a namespaceSelector")
	case len(r.Namespaces) > 0 && selNode != nil:
		return r, at(n, "route gives both namespaces and a namespaceSelector: use two routes")
	}
	if _, ok := names[r.Destination]; !ok {
		return r, at(destNode, "destination %q is not defined", r.Destination)
	}
	if selNode != nil {
		sel, err := parseSelector(selNode)
		if err != nil {
			return r, err
		}
		r.Selector = sel
	}
	return r, nil
}

func parseSelector(n *yaml.Node) (labels.Selector, error) {
	ls := &metav1.LabelSelector{}
	err := fields(n, map[string]func(v *yaml.Node) error{
		"matchLabels": func(v *yaml.Node) error {
			m := map[string]string{}
			if err := v.Decode(&m); err != nil {
				return at(v, "matchLabels: %v", err)
			}
			ls.MatchLabels = m
			return nil
		},
		"matchExpressions": func(v *yaml.Node) error {
			var exprs []struct {
				Key      string   `yaml:"key"`
				Operator string   `yaml:"operator"`
				Values   []string `yaml:"values"`
			}
			if err := v.Decode(&exprs); err != nil {
				return at(v, "matchExpressions: %v", err)
			}
			for _, e := range exprs {
				ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
					Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values,
				})
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	if len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0 {
		return nil, at(n, "empty namespaceSelector would match every namespace: use default instead")
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, at(n, "namespaceSelector: %v", err)
	}
	return sel, nil
}

// IsLineError reports whether err points at a line of the config.
func IsLineError(err error) bool {
	var e errAt
	return errors.As(err, &e)
}

func validDNSLabel(s string) bool { return len(s) <= 63 && dnsLabelRE.MatchString(s) }

func validSecretRef(s string) bool { return len(s) <= 253 && secretRefRE.MatchString(s) }

// validRoleARN: an IAM role ARN whose path and name are at most 512
// characters.
func validRoleARN(s string) bool {
	m := roleARNRE.FindStringSubmatch(s)
	return m != nil && len(m[1]) <= 512
}
