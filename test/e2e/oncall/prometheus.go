package oncall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Prometheus is a client of the Prometheus HTTP API (/api/v1).
type Prometheus struct {
	URL  string       // e.g. http://127.0.0.1:9090
	HTTP *http.Client // nil: http.DefaultClient
}

// get calls an /api/v1 endpoint and decodes the data of a successful
// answer into data; an error answer becomes an error with Prometheus'
// errorType and message.
func (p *Prometheus) get(ctx context.Context, path string, params url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.URL, "/")+"/api/v1/"+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	client := p.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	var r struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("prometheus %s: %s: %.300s", path, resp.Status, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("prometheus %s: %s: %s", path, r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// Query evaluates an instant query now and returns its result type (vector,
// matrix, scalar, string) and how many series it returned (1 for a scalar
// or string).
func (p *Prometheus) Query(ctx context.Context, expr string) (resultType string, series int, err error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "query", url.Values{"query": {expr}}, &d); err != nil {
		return "", 0, err
	}
	if d.ResultType != "vector" && d.ResultType != "matrix" {
		return d.ResultType, 1, nil
	}
	var result []json.RawMessage
	if err := json.Unmarshal(d.Result, &result); err != nil {
		return "", 0, fmt.Errorf("prometheus query: %w", err)
	}
	return d.ResultType, len(result), nil
}

// Series returns the label sets of the series matching a series selector,
// over all the data Prometheus holds.
func (p *Prometheus) Series(ctx context.Context, match string) ([]map[string]string, error) {
	var series []map[string]string
	err := p.get(ctx, "series", url.Values{"match[]": {match}}, &series)
	return series, err
}

// ParseQuery returns Prometheus' syntax tree of expr (/api/v1/parse_query,
// the JSON the web UI's tree view reads), or the parse error.
func (p *Prometheus) ParseQuery(ctx context.Context, expr string) (json.RawMessage, error) {
	var ast json.RawMessage
	err := p.get(ctx, "parse_query", url.Values{"query": {expr}}, &ast)
	return ast, err
}

// astNode is a node of parse_query's tree: every node type in one struct,
// each using its own fields (web/api/v1/translate_ast.go).
type astNode struct {
	Type     string     `json:"type"`
	Name     string     `json:"name"` // vectorSelector, matrixSelector
	Matchers []matcher  `json:"matchers"`
	Expr     *astNode   `json:"expr"`     // aggregation, parenExpr, unaryExpr, subquery
	Param    *astNode   `json:"param"`    // aggregation (topk's k, count_values' label)
	Grouping []string   `json:"grouping"` // aggregation
	Without  bool       `json:"without"`  // aggregation
	LHS      *astNode   `json:"lhs"`      // binaryExpr
	RHS      *astNode   `json:"rhs"`      // binaryExpr
	Args     []*astNode `json:"args"`     // call
	Func     struct {
		Name string `json:"name"`
	} `json:"func"` // call
}

type matcher struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Type  string `json:"type"` // =, !=, =~, !~
}

// metric is a selector's metric name: its name, or an equality matcher on
// __name__; "" when it is a regular expression or absent.
func (n *astNode) metric() string {
	if n.Name != "" {
		return n.Name
	}
	for _, m := range n.Matchers {
		if m.Name == "__name__" && m.Type == "=" {
			return m.Value
		}
	}
	return ""
}

// prometheusMade are series Prometheus writes itself: they exist whenever
// anything is scraped (or alerts are evaluated), so their absence says
// nothing about what the agent exports.
var prometheusMade = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
	"ALERTS": true, "ALERTS_FOR_STATE": true,
}

// labelCreating are functions whose result has labels their argument
// series lack (or none of theirs): a grouping over them cannot be checked
// against the series.
var labelCreating = map[string]bool{
	"label_replace": true, "label_join": true, "absent": true, "absent_over_time": true, "info": true,
}

// exportChecker checks selectors against the series Prometheus holds,
// remembering each metric's label sets across queries.
type exportChecker struct {
	p      *Prometheus
	series map[string][]map[string]string
}

// CheckExported reports the metric names and labels that expr uses and
// Prometheus has no series for: "metric Y is not exported" for a selector
// whose metric has no series (apart from Prometheus' own up, scrape_*,
// ALERTS), "label L not on metric Y" for a label named in a selector's
// matchers, or in the by (...) of an aggregation directly over the
// selector, that no series of the metric has. Groupings over an inner
// aggregation or a label-creating function (label_replace, ...) are not
// checked: a false alarm is worse than a miss here. A parse error is
// reported as is.
func (p *Prometheus) CheckExported(ctx context.Context, expr string) []error {
	c := &exportChecker{p: p, series: map[string][]map[string]string{}}
	return c.check(ctx, expr)
}

// CheckQueries runs every query (dashboard panels' queries) and checks it
// with CheckExported, each error prefixed with the panel.
func (p *Prometheus) CheckQueries(ctx context.Context, qs []PanelQuery) []error {
	c := &exportChecker{p: p, series: map[string][]map[string]string{}}
	var errs []error
	for _, q := range qs {
		if _, _, err := p.Query(ctx, q.Expr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", q, err))
			continue // its syntax tree would only repeat the parse error
		}
		for _, err := range c.check(ctx, q.Expr) {
			errs = append(errs, fmt.Errorf("%s: %w", q, err))
		}
	}
	return errs
}

func (c *exportChecker) check(ctx context.Context, expr string) []error {
	raw, err := c.p.ParseQuery(ctx, expr)
	if err != nil {
		return []error{err}
	}
	var root astNode
	if err := json.Unmarshal(raw, &root); err != nil {
		return []error{fmt.Errorf("parse_query answer: %w", err)}
	}
	// Fetch every metric's series first, so that the checks below are
	// plain look-ups.
	var fetchErr error
	visit(&root, func(n *astNode) {
		if isSelector(n) && fetchErr == nil {
			_, fetchErr = c.seriesOf(ctx, n.metric())
		}
	})
	if fetchErr != nil {
		return []error{fetchErr}
	}

	var problems []string
	report := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if !slices.Contains(problems, msg) { // the same selector twice, as in a / count(a)
			problems = append(problems, msg)
		}
	}
	visit(&root, func(n *astNode) {
		switch {
		case isSelector(n):
			name := n.metric()
			series := c.series[name]
			switch {
			case name == "": // a regexp over names: nothing definite to check
			case len(series) == 0:
				if !prometheusMade[name] {
					report("metric %s is not exported", name)
				}
			default:
				for _, m := range n.Matchers {
					if m.Name != "__name__" && !hasLabel(series, m.Name) {
						report("label %s not on metric %s", m.Name, name)
					}
				}
			}
		case n.Type == "aggregation" && !n.Without && len(n.Grouping) > 0:
			metrics, series, ok := c.directSeries(n.Expr)
			if !ok {
				return
			}
			for _, l := range n.Grouping {
				if !hasLabel(series, l) {
					report("label %s not on metric %s (in by)", l, strings.Join(metrics, ", "))
				}
			}
		}
	})
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = errors.New(p)
	}
	return errs
}

// directSeries returns the metrics of the selectors in an aggregation's
// argument and their series, which are what the aggregation's by (...)
// groups. ok is false when that cannot be decided: an inner aggregation or
// label-creating function, a selector without a definite metric name or
// whose metric has no series.
func (c *exportChecker) directSeries(arg *astNode) (metrics []string, series []map[string]string, ok bool) {
	ok = true
	var direct func(n *astNode)
	direct = func(n *astNode) {
		if n == nil || !ok {
			return
		}
		switch n.Type {
		case "vectorSelector", "matrixSelector":
			name := n.metric()
			s := c.series[name]
			if name == "" || len(s) == 0 {
				ok = false
				return
			}
			if !slices.Contains(metrics, name) {
				metrics = append(metrics, name)
				series = append(series, s...)
			}
		case "parenExpr", "unaryExpr", "subquery":
			direct(n.Expr)
		case "binaryExpr":
			// The result has the labels of one side (or of both, with
			// group_left/right): a label on either side is accepted.
			direct(n.LHS)
			direct(n.RHS)
		case "call":
			if labelCreating[n.Func.Name] {
				ok = false
			}
			for _, a := range n.Args {
				direct(a)
			}
		case "numberLiteral", "stringLiteral":
		default: // an aggregation, or a node type this code does not know
			ok = false
		}
	}
	direct(arg)
	sort.Strings(metrics)
	return metrics, series, ok && len(metrics) > 0
}

func isSelector(n *astNode) bool {
	return n.Type == "vectorSelector" || n.Type == "matrixSelector"
}

// visit calls fn on n and every node below it.
func visit(n *astNode, fn func(*astNode)) {
	if n == nil {
		return
	}
	fn(n)
	for _, child := range append([]*astNode{n.Expr, n.Param, n.LHS, n.RHS}, n.Args...) {
		visit(child, fn)
	}
}

// seriesOf returns (and remembers) the series of a metric; none for "".
func (c *exportChecker) seriesOf(ctx context.Context, metric string) ([]map[string]string, error) {
	if s, ok := c.series[metric]; ok || metric == "" {
		return s, nil
	}
	s, err := c.p.Series(ctx, fmt.Sprintf("{__name__=%q}", metric))
	if err != nil {
		return nil, err
	}
	c.series[metric] = s
	return s, nil
}

// hasLabel says whether a series has the label with a value (Prometheus
// stores no empty labels, but "" must not count either).
func hasLabel(series []map[string]string, label string) bool {
	for _, s := range series {
		if s[label] != "" {
			return true
		}
	}
	return false
}
