package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/routing"
	"github.com/crashdump-io/crashdump/uploader/s3store"
)

// protectionFlags configure node protection and tenancy: the disk budget,
// failure retention, crash-loop storm control, selection, bandwidth and
// per-tenant destinations.
type protectionFlags struct {
	maxDumpBytes   string
	maxPerNS       byteSize
	keepFree       string
	retryFor       time.Duration
	failedTTL      time.Duration
	maxPerWindow   int
	window         time.Duration
	annotatedOnly  bool
	maxBandwidth   byteSize
	routingConfig  string
	credentialsDir string
	configCheck    bool
	checkStore     bool
	budgetInterval time.Duration
}

func (p *protectionFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.maxDumpBytes, "max-dump-bytes", "10%", "most the dumps staged and failed on this node may use on disk together, as a size (20GiB) or a percentage of the filesystem; beyond it the tenant (namespace) using the most loses its oldest dumps not being uploaded (0: no limit)")
	fs.Var(&p.maxPerNS, "max-dump-bytes-per-namespace", "most the dumps of one namespace may use on disk on this node; beyond it that namespace's oldest are evicted (0: no limit; namespace label "+collector.LabelMaxDumpBytes+", a quantity such as 2Gi or 0 for none, overrides)")
	fs.StringVar(&p.keepFree, "keep-free", "15%", "free space the dump filesystem should keep, as a percentage or a size (5GiB); below it the agent reports disk pressure (crashdump_disk_pressure) and releases node copies of stored dumps early, keeps collecting and uploading, and evicts nothing for it (0: not watched)")
	fs.DurationVar(&p.budgetInterval, "budget-check-interval", 10*time.Second, "how often the disk budget and failed-dump retention are checked (also on every new dump)")
	fs.DurationVar(&p.retryFor, "retry-for", 24*time.Hour, "how long a dump that fails to upload is retried before it is moved to failed/")
	fs.DurationVar(&p.failedTTL, "failed-ttl", 7*24*time.Hour, "how long dumps are kept in failed/ before they are deleted")
	fs.IntVar(&p.maxPerWindow, "max-dumps-per-window", 3, "dumps of one container uploaded per --dump-window; later ones only get a manifest (0: no limit; pod annotation "+collector.AnnotationMaxPerHour+" overrides)")
	fs.DurationVar(&p.window, "dump-window", time.Hour, "the window of --max-dumps-per-window")
	fs.BoolVar(&p.annotatedOnly, "collect-annotated-only", false, "collect only pods annotated "+collector.AnnotationCollect+`: "true"`)
	fs.Var(&p.maxBandwidth, "max-upload-bandwidth", "bytes per second all uploads of this node together may send (0: no limit)")
	fs.StringVar(&p.routingConfig, "routing-config", "", "YAML file routing namespaces to their own destinations (buckets, credentials); see docs")
	fs.StringVar(&p.credentialsDir, "credentials-dir", "/etc/crashdump/credentials", "where the Secrets named by credentialsSecret in --routing-config are mounted")
	fs.BoolVar(&p.configCheck, "config-check", false, "check the flags, the routing config and the dump and state directories as the agent does at start-up, print the result, and exit")
	fs.BoolVar(&p.checkStore, "check-store", false, "with --config-check: also reach every store (one HeadBucket each, with the credentials the agent would use)")
}

// sizeOrPercent parses a size ("5GiB") or a percentage of the filesystem
// ("10%").
func sizeOrPercent(flag, v string) (bytes int64, percent float64, err error) {
	s := strings.TrimSpace(v)
	if pv, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pv), 64)
		if err != nil || f < 0 || f >= 100 {
			return 0, 0, fmt.Errorf("--%s %q: want a percentage below 100%% or a size", flag, v)
		}
		return 0, f, nil
	}
	var b byteSize
	if err := b.Set(s); err != nil {
		return 0, 0, fmt.Errorf("--%s: %w", flag, err)
	}
	return int64(b), 0, nil
}

// apply copies the settings into the collector's configuration.
func (p *protectionFlags) apply(c *collector.Config) error {
	mb, mp, err := sizeOrPercent("max-dump-bytes", p.maxDumpBytes)
	if err != nil {
		return err
	}
	kb, kp, err := sizeOrPercent("keep-free", p.keepFree)
	if err != nil {
		return err
	}
	if p.maxPerWindow < 0 {
		return fmt.Errorf("--max-dumps-per-window %d: must not be negative", p.maxPerWindow)
	}
	c.MaxDumpBytes, c.MaxDumpPercent, c.KeepFreeBytes, c.KeepFreePercent = mb, mp, kb, kp
	c.MaxDumpBytesPerNamespace = int64(p.maxPerNS)
	c.BudgetInterval, c.RetryFor, c.FailedTTL = p.budgetInterval, p.retryFor, p.failedTTL
	c.Policy = collector.Policy{MaxPerWindow: p.maxPerWindow, Window: p.window, AnnotatedOnly: p.annotatedOnly}
	return nil
}

// destinations opens the routing config's destinations, or returns nil
// (single destination) when there is none.
func (p *protectionFlags) destinations(ctx context.Context, def uploader.Store, base s3store.Config,
	wrap func(uploader.Store, string) uploader.Store, podSource string, log *slog.Logger) (*routing.Destinations, error) {
	if p.routingConfig == "" {
		return nil, nil
	}
	cfg, err := routing.Load(p.routingConfig)
	if err != nil {
		return nil, err
	}
	if cfg.UsesSelectors && podSource != "apiserver" {
		log.Warn("routing config uses namespace selectors, which need --pod-source apiserver to see namespace labels; those routes will not match",
			"pod_source", podSource)
	}
	return routing.Open(ctx, cfg, def, base, routing.OpenOptions{CredentialsDir: p.credentialsDir, Wrap: wrap, Log: log})
}
