// Package oncall is the on-call loop of make e2e: configures the real
// Prometheus and Alertmanager from the chart's rendered objects and runs the
// dashboard's queries.
//
// The e2e cluster has no Prometheus Operator, so ScrapeConfigs and RuleFile
// translate the chart's PodMonitor, ServiceMonitor and PrometheusRule objects
// the way the operator would; AlertmanagerConfig and Webhook receive what the
// alerts send; DashboardQueries and Prometheus check that every dashboard
// query runs and only names metrics and labels the agent exports.
//
// The package deliberately does not import github.com/prometheus/prometheus:
// the e2e module keeps its small dependency set, and the real binaries
// (prometheus, promtool, alertmanager) are the judges of the formats.
package oncall
