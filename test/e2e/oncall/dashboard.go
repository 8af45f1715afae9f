package oncall

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// PanelQuery is one query of a dashboard panel, variables substituted.
type PanelQuery struct {
	Panel string // the panel's title
	RefID string
	Expr  string
}

func (q PanelQuery) String() string { return fmt.Sprintf("panel %q (%s)", q.Panel, q.RefID) }

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type templateVar struct {
	Name       string `json:"name"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
	Current    struct {
		Value any `json:"value"` // a string, or a list with multi
	} `json:"current"`
}

// The variable forms Grafana substitutes: ${var} and ${var:format},
// [[var]] and [[var:format]], $var. Names start with a letter or _ so that
// regexp references such as label_replace's "$1" or "${1}" stay as they are.
var variableRef = regexp.MustCompile(`\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\[\[([A-Za-z_]\w*)(?::[^\]]*)?\]\]|\$([A-Za-z_]\w*)`)

// DashboardQueries returns every target expression of every panel of a
// Grafana dashboard (also those of collapsed rows) with its template
// variables substituted: from vars first (including Grafana's built-ins
// __rate_interval, __interval, __range, __range_s), else the variable's
// current value in the dashboard. The value All (or $__all) of an includeAll
// variable becomes its allValue, as Grafana queries it. A variable left
// unresolved is an error naming the panel and the variable.
func DashboardQueries(dashboardJSON []byte, vars map[string]string) ([]PanelQuery, error) {
	var d dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	tvars := map[string]templateVar{}
	for _, v := range d.Templating.List {
		tvars[v.Name] = v
	}
	resolve := func(name string) (string, error) {
		tv, templated := tvars[name]
		value, ok := vars[name]
		if !ok && templated {
			switch c := tv.Current.Value.(type) {
			case string:
				value, ok = c, c != ""
			case []any:
				if len(c) == 1 {
					value, ok = c[0].(string)
				}
			}
		}
		if !ok {
			return "", fmt.Errorf("unknown variable $%s", name)
		}
		if templated && tv.IncludeAll && (value == "All" || value == "$__all") {
			if tv.AllValue == "" {
				// Grafana would join all the variable's values, which only a
				// live query of the variable knows.
				return "", fmt.Errorf("variable $%s is All without allValue: give its value in vars", name)
			}
			return tv.AllValue, nil
		}
		return value, nil
	}

	var out []PanelQuery
	var walk func([]panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.Expr == "" {
					continue // not a Prometheus query
				}
				q := PanelQuery{Panel: p.Title, RefID: t.RefID}
				var err error
				q.Expr = variableRef.ReplaceAllStringFunc(t.Expr, func(ref string) string {
					m := variableRef.FindStringSubmatch(ref)
					v, rerr := resolve(m[1] + m[2] + m[3]) // exactly one group matched
					if rerr != nil && err == nil {
						err = rerr
					}
					return v
				})
				if err != nil {
					return fmt.Errorf("%s: %w", q, err)
				}
				out = append(out, q)
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	return out, nil
}
