package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

type lsFlags struct {
	all       bool
	pod       string
	container string
	node      string
	since     string
	until     string
	output    string
	noHeaders bool
	limit     int
}

func newLsCmd(mode cliMode) *cobra.Command {
	var f lsFlags
	var o *clientOptions
	nsDefault := "all namespaces"
	if mode.plugin {
		nsDefault = "the kubeconfig context's namespace"
	}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List crash dumps, newest first",
		Long: `List the crash dumps in the store, newest first, with the pod and container
that crashed, the node, the dump's size (original and as stored), the
exception (or signal) when known, and the short ID that describe and get take.

Without -n or -A, ` + mode.name + ` lists ` + nsDefault + `.
Namespace and pod filters read only that part of the bucket; --since,
--until and --container are answered from the object keys; only the
manifests of the dumps shown are read. Dumps that could not be attributed
to a pod are in the namespace "_unknown".`,
		Example: examples(mode, `
  # Dumps in namespace prod (a pod's dumps; one container's dumps)
  {{name}} ls -n prod
  {{name}} ls -n prod --pod api-7d9f8c6b5-x2x4z
  {{name}} ls -n prod --container api

  # Everything from the last two hours, in every namespace
  {{name}} ls -A --since 2h

  # A time window, one node, as JSON for jq
  {{name}} ls -A --since 2026-01-02T10:00:00Z --until 2026-01-02T12:00:00Z --node ip-10-0-1-7 -o json

  # Straight from a bucket or a local directory store, without a cluster
  {{name}} ls -A --store s3://crashdumps/prod
  {{name}} ls -A --store file:///var/lib/crashdump/store`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLs(cmd, o, f)
		},
	}
	o = newClientOptions(mode, cmd, "list this namespace (default: "+nsDefault+")")
	fs := cmd.Flags()
	fs.BoolVarP(&f.all, "all-namespaces", "A", false, "list every namespace")
	fs.StringVar(&f.pod, "pod", "", "only this pod's dumps (exact name)")
	fs.StringVar(&f.container, "container", "", "only dumps of this container")
	fs.StringVar(&f.node, "node", "", "only dumps collected on this node")
	fs.StringVar(&f.since, "since", "", "only dumps collected since then: a duration back from now (30m, 2h, 7d) or a time (RFC 3339 or 2006-01-02)")
	fs.StringVar(&f.until, "until", "", "only dumps collected until then (same forms as --since)")
	fs.StringVarP(&f.output, "output", "o", "table", "output format: table, wide, json, yaml or name (one dump ID per line, for scripts)")
	fs.BoolVar(&f.noHeaders, "no-headers", false, "do not print the table header")
	fs.IntVar(&f.limit, "limit", 0, "show only the newest N dumps (0: all)")
	registerCompletions(cmd, o)
	return cmd
}

func runLs(cmd *cobra.Command, o *clientOptions, f lsFlags) error {
	switch f.output {
	case "table", "wide", "json", "yaml", "name":
	default:
		return fmt.Errorf("-o %q: want table, wide, json, yaml or name", f.output)
	}
	if f.limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", f.limit)
	}
	now := time.Now()
	since, err := parseTimeFlag(f.since, now)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	until, err := parseTimeFlag(f.until, now)
	if err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	ns, _, err := o.listNamespace(f.all)
	if err != nil {
		return err
	}
	ctx, cancel := commandContext(cmd)
	defer cancel()
	s, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	q := catalog.Query{Namespace: ns, Pod: f.pod, Container: f.container, Node: f.node, Since: since, Until: until, Limit: f.limit}
	dumps, err := s.cat.List(ctx, q)
	if err != nil {
		return fmt.Errorf("list dumps in %s: %w", s.url, err)
	}
	defer o.report(cmd.ErrOrStderr(), s)
	out := cmd.OutOrStdout()
	switch f.output {
	case "json", "yaml":
		return writeLsJSON(out, s, dumps, f.output == "yaml")
	case "name":
		// The full ID: unambiguous whatever else the store holds.
		for _, d := range dumps {
			fmt.Fprintln(out, d.ID())
		}
		return nil
	}
	if len(dumps) == 0 {
		where := "any namespace"
		if ns != "" {
			where = "namespace " + ns
		}
		if empty, err := s.cat.Empty(ctx); err == nil && empty {
			// Nothing at all under the prefix: a mistyped --store or
			// prefix looks the same as a quiet cluster otherwise.
			fmt.Fprintf(cmd.ErrOrStderr(), "No dumps found in %s. The store %s is empty: check the bucket and prefix (--store), and that the agent uploads there.\n", where, s.url)
			return nil
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "No dumps found in %s.\n", where)
		return nil
	}
	for _, d := range dumps {
		if d.ManifestErr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", d.ManifestErr)
		}
	}
	return writeLsTable(out, dumps, f.output == "wide", !f.noHeaders, time.Now())
}

// exception is the EXCEPTION column: the managed exception type from the
// crash report, else the signal of an ELF core, else "".
func exception(m *manifest.Manifest) string {
	if m == nil {
		return ""
	}
	if m.CrashReport != nil && m.CrashReport.ExceptionType != "" {
		return m.CrashReport.ExceptionType
	}
	if m.Core != nil && m.Core.Signal != 0 {
		if m.Core.SignalName != "" {
			return m.Core.SignalName
		}
		return fmt.Sprintf("signal %d", m.Core.Signal)
	}
	return ""
}

// flags are the wide output's notes on a dump that is not quite whole.
func flagsOf(d *catalog.Dump) string {
	var fl []string
	if !d.HasManifest() {
		fl = append(fl, "no-manifest")
	} else if d.ManifestErr != nil {
		fl = append(fl, "bad-manifest")
	}
	if !d.HasObject() {
		fl = append(fl, "manifest-only")
	}
	if m := d.Manifest; m != nil && m.Suppressed != nil {
		fl = append(fl, fmt.Sprintf("suppressed=%d", m.Suppressed.Count))
	}
	if m := d.Manifest; m != nil && m.Incomplete {
		fl = append(fl, "incomplete")
	}
	if m := d.Manifest; m != nil && m.CrashReport != nil && m.CrashReport.Partial {
		fl = append(fl, "partial-crash-report")
	}
	return strings.Join(fl, ",")
}

// relatedIDs are the short IDs of the other dumps of the same crash
// (manifest.related), comma-separated.
func relatedIDs(m *manifest.Manifest) string {
	if m == nil {
		return ""
	}
	ids := make([]string, 0, len(m.Related))
	for _, r := range m.Related {
		ids = append(ids, r.ID[:min(len(r.ID), 8)])
	}
	return strings.Join(ids, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const tableTime = "2006-01-02T15:04:05Z"

func writeLsTable(w io.Writer, dumps []*catalog.Dump, wide, headers bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if headers {
		h := "TIME\tAGE\tNAMESPACE\tPOD\tCONTAINER\tNODE\tSIZE\tSTORED\tEXCEPTION\tRELATED\tID"
		if wide {
			h += "\tKIND\tCORRELATION\tFLAGS\tKEY"
		}
		fmt.Fprintln(tw, h)
	}
	for _, d := range dumps {
		m := d.Manifest
		node, size := "", int64(-1)
		if m != nil {
			node, size = m.Node, m.File.Size
		}
		stored := humanBytes(-1)
		switch {
		case d.HasObject():
			stored = humanBytes(d.StoredSize)
		case m != nil && m.Suppressed != nil:
			// A crash loop's record: how many dumps it stands for.
			stored = fmt.Sprintf("not uploaded (%d)", m.Suppressed.Count)
		case m != nil && m.Object.ManifestOnly:
			stored = "not uploaded"
		}
		id := d.ShortID
		if wide {
			id = d.ID()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s",
			d.Time.UTC().Format(tableTime), age(now.Sub(d.Time)), d.Namespace, d.Pod, d.Container, dash(node),
			humanBytes(size), stored, dash(exception(m)), dash(relatedIDs(m)), id)
		if wide {
			kind, method := "", ""
			if m != nil {
				kind, method = m.Kind, m.Correlation.Method
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", dash(kind), dash(method), dash(flagsOf(d)), d.Key)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// lsItem is one dump in `ls -o json`.
type lsItem struct {
	ID         string    `json:"id"`
	ShortID    string    `json:"shortID"`
	Time       time.Time `json:"time"`
	Namespace  string    `json:"namespace"`
	Pod        string    `json:"pod"`
	Container  string    `json:"container"`
	Node       string    `json:"node,omitempty"`
	FileName   string    `json:"fileName"`
	Size       int64     `json:"size"`       // original size, -1 when unknown
	StoredSize int64     `json:"storedSize"` // -1 when the object is missing
	Exception  string    `json:"exception,omitempty"`
	Key        string    `json:"key"`
	URL        string    `json:"url"`
	Flags      []string  `json:"flags,omitempty"`
	// Manifest is the full manifest, as stored.
	Manifest      *manifest.Manifest `json:"manifest,omitempty"`
	ManifestError string             `json:"manifestError,omitempty"`
}

// lsList is the document of `ls -o json|yaml`, shaped like kubectl's
// lists: `.items[]` in jq, whatever else is added to it later.
type lsList struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Items      []lsItem `json:"items"`
}

func writeLsJSON(w io.Writer, s *session, dumps []*catalog.Dump, asYAML bool) error {
	items := make([]lsItem, 0, len(dumps))
	for _, d := range dumps {
		it := lsItem{
			ID: d.ID(), ShortID: d.ShortID, Time: d.Time.UTC(), Namespace: d.Namespace, Pod: d.Pod,
			Container: d.Container, FileName: d.FileName, Size: -1, StoredSize: d.StoredSize,
			Key: d.Key, URL: s.objectURL(d.Key), Manifest: d.Manifest,
		}
		if !d.HasObject() {
			it.StoredSize = -1
		}
		if m := d.Manifest; m != nil {
			it.Node, it.Size, it.Exception, it.FileName = m.Node, m.File.Size, exception(m), m.File.Name
			if m.Object.URL != "" {
				it.URL = m.Object.URL
			}
		}
		if d.ManifestErr != nil {
			it.ManifestError = d.ManifestErr.Error()
		}
		if fl := flagsOf(d); fl != "" {
			it.Flags = strings.Split(fl, ",")
		}
		items = append(items, it)
	}
	if asYAML {
		// The same document as -o json, in YAML (field names as in JSON).
		b, err := yaml.Marshal(lsList{APIVersion: "crashdump.io/v1", Kind: "List", Items: items})
		if err != nil {
			return fmt.Errorf("write yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(lsList{APIVersion: "crashdump.io/v1", Kind: "List", Items: items}); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
