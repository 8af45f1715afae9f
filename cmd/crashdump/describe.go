package main

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// maxFrames is how many of the crashed thread's frames describe shows.
const maxFrames = 12

type refFlags struct {
	pod string
}

func newDescribeCmd(mode cliMode) *cobra.Command {
	var f refFlags
	var output string
	var o *clientOptions
	cmd := &cobra.Command{
		Use:   "describe ID|KEY|URL",
		Short: "Show everything known about one dump",
		Long: `Show a dump's manifest in readable form: the pod, container and image that
crashed, the node, the process, how the dump was attributed, the crash
report (exception and the crashed thread's top frames), the ELF core summary,
where the object is, and the command that opens it.

The dump is named by its ID as ls prints it (any unambiguous prefix of at
least 4 hex digits), by its key, or by its object URL. IDs are searched in
every namespace unless -n (and --pod) narrow the search.`,
		Example: examples(mode, `
  # By the short ID ls prints (or any unambiguous prefix of the full ID)
  {{name}} describe 3f2a9c1e

  # By key or object URL, as in the Kubernetes Event CrashDumpUploaded
  {{name}} describe s3://crashdumps/prod/shop/api-7d9f8c6b5-x2x4z/20260102T101500Z_api_3f2a9c1e_coredump.1.dmp.zst

  # The raw manifest
  {{name}} describe 3f2a9c1e -o json`),
		Args: oneDump(mode, "describe"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "text", "json", "yaml":
			case "table", "wide":
				// ls's words for "for people": the same here.
				output = "text"
			default:
				return fmt.Errorf("-o %q: want text, json or yaml", output)
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			s, err := o.open(ctx)
			if err != nil {
				return err
			}
			defer s.close()
			defer o.report(cmd.ErrOrStderr(), s)
			d, err := s.cat.Resolve(ctx, args[0], catalog.Query{Namespace: o.explicitNamespace(), Pod: f.pod})
			if err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				if d.Manifest == nil {
					return fmt.Errorf("describe %s: %s", d.Key, noManifest(d))
				}
				b, err := manifest.Marshal(d.Manifest)
				if err != nil {
					return err
				}
				if output == "yaml" {
					if b, err = yaml.JSONToYAML(b); err != nil {
						return err
					}
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return writeDescription(cmd.OutOrStdout(), mode, s, d, time.Now())
		},
	}
	o = newClientOptions(mode, cmd, "look for the ID in this namespace only (default: every namespace)")
	cmd.Flags().StringVar(&f.pod, "pod", "", "look for the ID among this pod's dumps only")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text (table and wide mean the same), json or yaml (the manifest)")
	registerCompletions(cmd, o)
	return cmd
}

func noManifest(d *catalog.Dump) string {
	if d.ManifestErr != nil {
		return fmt.Sprintf("its manifest is unreadable: %v", d.ManifestErr)
	}
	return "it has no manifest yet (the agent writes it right after the dump is verified)"
}

// describer writes "Label:  value" lines with aligned values.
type describer struct {
	w      io.Writer
	indent string
}

func (p describer) line(label, value string) {
	if value == "" {
		return
	}
	fmt.Fprintf(p.w, "%s%-*s %s\n", p.indent, 14-len(p.indent), label+":", value)
}

func (p describer) section(title string) describer {
	fmt.Fprintf(p.w, "%s%s:\n", p.indent, title)
	return describer{w: p.w, indent: p.indent + "  "}
}

func writeDescription(w io.Writer, mode cliMode, s *session, d *catalog.Dump, now time.Time) error {
	p := describer{w: w}
	m := d.Manifest
	p.line("ID", d.ID())
	p.line("Key", d.Key)
	url := s.objectURL(d.Key)
	if m != nil && m.Object.URL != "" {
		url = m.Object.URL
	}
	p.line("URL", url)
	if m == nil {
		if d.Parsed {
			p.line("Collected", fmt.Sprintf("%s (%s ago)", d.Time.UTC().Format(time.RFC3339), age(now.Sub(d.Time))))
			p.line("Namespace", d.Namespace)
			p.line("Pod", d.Pod)
			p.line("Container", d.Container)
		}
		if d.HasObject() {
			p.line("Stored size", humanBytes(d.StoredSize))
		}
		p.line("Manifest", noManifest(d))
		return nil
	}
	p.line("Collected", fmt.Sprintf("%s (%s ago)", m.CollectedAt.UTC().Format(time.RFC3339), age(now.Sub(m.CollectedAt))))
	p.line("Node", m.Node)
	p.line("Kind", m.Kind)
	if m.Incomplete {
		p.line("Incomplete", "yes: "+dash(m.IncompleteReason))
	}
	p.line("Agent", m.AgentVersion)

	f := p.section("File")
	f.line("Name", m.File.Name)
	f.line("Path", m.File.Path)
	f.line("Size", fmt.Sprintf("%s (%d bytes)", humanBytes(m.File.Size), m.File.Size))
	f.line("SHA-256", m.File.SHA256)
	if !m.File.ModTime.IsZero() {
		f.line("Modified", m.File.ModTime.UTC().Format(time.RFC3339))
	}
	f.line("Crash report", m.File.CrashReport)

	st := p.section("Stored")
	switch {
	case m.Object.ManifestOnly:
		st.line("Object", "not uploaded (manifest only): "+dash(m.Object.NotUploadedReason))
	case !d.HasObject():
		st.line("Object", "missing from the store")
	default:
		size := fmt.Sprintf("%s (%d bytes)", humanBytes(d.StoredSize), d.StoredSize)
		if m.File.Size > 0 && m.Object.Compression != manifest.CompressionNone {
			size += fmt.Sprintf(", %.1f%% of the original", 100*float64(d.StoredSize)/float64(m.File.Size))
		}
		st.line("Size", size)
	}
	st.line("Compression", m.Object.Compression)
	st.line("Checksum", m.Object.Checksum)
	if sp := m.Suppressed; sp != nil {
		// A crash loop's one record per window: how many it stands for.
		ss := p.section("Crash loop")
		ss.line("Unit", sp.Key)
		ss.line("Not uploaded", fmt.Sprintf("%d dumps, %s (%d bytes)", sp.Count, humanBytes(sp.Bytes), sp.Bytes))
		ss.line("First", sp.First.UTC().Format(time.RFC3339))
		ss.line("Last", sp.Last.UTC().Format(time.RFC3339))
		ss.line("Window ends", sp.WindowEnd.UTC().Format(time.RFC3339))
	}

	if pod := m.Pod; pod != nil {
		ps := p.section("Pod")
		ps.line("Namespace", pod.Namespace)
		ps.line("Name", pod.Name)
		ps.line("UID", pod.UID)
		c := pod.Container
		if pod.ContainerID != "" {
			c += " (" + pod.ContainerID + ")"
		}
		ps.line("Container", c)
		ps.line("Image", pod.Image)
		ps.line("Image ID", pod.ImageID)
		if pod.OwnerKind != "" {
			ps.line("Owner", pod.OwnerKind+"/"+pod.OwnerName)
		}
		if pod.RestartCount != nil {
			ps.line("Restarts", fmt.Sprintf("%d (the crashed instance's)", *pod.RestartCount))
		} else {
			ps.line("Restarts", "unknown (the container instance that crashed is not known)")
		}
		if t := pod.Termination; t != nil {
			ps.line("Exit", manifest.ExitSummary(t))
		}
		ps.line("Labels", labels(pod.Labels))
	} else {
		p.line("Pod", "not attributed")
	}

	if pr := m.Process; pr != nil {
		var parts []string
		if pr.HostPID != 0 {
			parts = append(parts, fmt.Sprintf("host PID %d", pr.HostPID))
		}
		if pr.PID != 0 {
			parts = append(parts, fmt.Sprintf("PID %d in its container", pr.PID))
		}
		if pr.Exe != "" {
			parts = append(parts, pr.Exe)
		}
		p.line("Process", strings.Join(parts, ", "))
	}

	corr := m.Correlation.Method
	if m.Correlation.Reason != "" {
		corr += " (" + m.Correlation.Reason + ")"
	}
	p.line("Correlation", corr)
	for _, c := range m.Correlation.Candidates {
		p.line("  candidate", candidateLine(c, m.File.ModTime))
	}
	for _, r := range m.Related {
		p.line("Related", fmt.Sprintf("%s (%s), another dump of this container instance's crash", r.ID[:min(len(r.ID), 8)], r.Key))
	}

	if cr := m.CrashReport; cr != nil {
		cs := p.section("Crash report")
		exc := cr.ExceptionType
		if exc == "" {
			exc = "none (a native crash)"
		}
		if cr.HResult != "" {
			exc += " (HRESULT " + cr.HResult + ")"
		}
		cs.line("Exception", exc)
		cs.line("Process", cr.ProcessName)
		cs.line("Runtime", cr.RuntimeVersion)
		if cr.Partial {
			cs.line("Note", "the report was not valid JSON or was truncated; this is what could be read")
		}
		title := "Crashed thread"
		if cr.CrashedThreadID != "" {
			title += " " + cr.CrashedThreadID
		}
		if len(cr.CrashedThreadFrames) == 0 {
			cs.line(title, "no frames")
		} else {
			fmt.Fprintf(w, "%s%s, top frames:\n", cs.indent, title)
			for i, fr := range cr.CrashedThreadFrames {
				if i == maxFrames {
					fmt.Fprintf(w, "%s  ... %d more frames (%s describe %s -o json)\n", cs.indent, len(cr.CrashedThreadFrames)-maxFrames, mode.name, d.ShortID)
					break
				}
				fmt.Fprintf(w, "%s  #%-2d %s\n", cs.indent, i, frame(fr))
			}
		}
	}

	if c := m.Core; c != nil {
		cs := p.section("ELF core")
		sig := "none recorded (taken from a live process, e.g. gcore)"
		if c.Signal != 0 {
			sig = fmt.Sprintf("%s (%d)", dash(c.SignalName), c.Signal)
		}
		cs.line("Signal", sig)
		if c.PID != 0 {
			cs.line("PID", fmt.Sprint(c.PID))
		}
		cs.line("Executable", c.Exe)
		args := c.Args
		if c.ArgsTruncated {
			args += " ..."
		}
		cs.line("Arguments", args)
		if c.Threads != 0 {
			cs.line("Threads", fmt.Sprint(c.Threads))
		}
		cs.line("Machine", c.Machine)
	}

	file := localName(d)
	if oc := openCommand(m, file); oc.command != "" {
		// A key outside the default layout (a prefix) has no short ID in
		// it: the manifest's ID, else the key, still names the dump.
		ref := d.ShortID
		if ref == "" {
			ref = d.ID()
		}
		if ref == "" {
			ref = d.Key
		}
		p.line("Open with", mode.name+" get "+ref+" && "+oc.command)
	} else {
		p.line("Fetch with", mode.name+" get "+d.ShortID)
	}
	return nil
}

// frame renders a stack frame: module!method + offset.
func frame(f manifest.Frame) string {
	s := f.Method
	if s == "" {
		s = "<unknown>"
	}
	if f.Module != "" {
		s = path.Base(f.Module) + "!" + s
	}
	switch {
	case f.Managed && f.ILOffset != "":
		s += " + IL " + f.ILOffset
	case f.NativeOffset != "":
		s += " + " + f.NativeOffset
	}
	return s
}

func labels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ", ")
}

// age renders a duration the way kubectl's AGE column does.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// candidateLine is one candidate pod; a candidate ranked by evidence also
// says which container ended, how, and when against the dump's last write:
// "shop/api-x2k4p container api: exit 139 SIGSEGV (Error), 1s after the
// dump's last write, restart count 2".
func candidateLine(c manifest.PodRef, written time.Time) string {
	s := c.Namespace + "/" + c.Name
	if c.Container != "" {
		s += " container " + c.Container
	}
	t := c.Termination
	if t == nil {
		return s
	}
	exit := fmt.Sprintf("exit %d", t.ExitCode)
	if t.SignalName != "" {
		exit += " " + t.SignalName
	}
	if t.Reason != "" {
		exit += " (" + t.Reason + ")"
	}
	s += ": " + exit
	if !t.FinishedAt.IsZero() && !written.IsZero() {
		d := t.FinishedAt.Sub(written).Round(time.Second)
		switch {
		case d > 0:
			s += fmt.Sprintf(", %s after the dump's last write", d)
		case d < 0:
			s += fmt.Sprintf(", %s before the dump's last write", -d)
		default:
			s += ", as the dump was last written"
		}
	}
	if c.RestartCount != nil {
		s += fmt.Sprintf(", restart count %d", *c.RestartCount)
	}
	return s
}
