package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// exitIntegrity is the exit status of a get whose data failed verification,
// distinct from 1 (any other error) so scripts can tell "corrupt" from
// "could not reach the store".
const exitIntegrity = 3

// exitError gives an error an exit status (main's exitCoder).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

type getFlags struct {
	refFlags
	output      string
	force       bool
	progress    string
	crashReport bool
}

func newGetCmd(mode cliMode) *cobra.Command {
	var f getFlags
	var o *clientOptions
	cmd := &cobra.Command{
		Use:   "get ID|KEY|URL",
		Short: "Download a dump: decompress, verify its SHA-256, save it",
		Long: `Download a dump, decompress it and verify it against the SHA-256 the agent
recorded when it collected it, then print the command that opens it
(dotnet-dump analyze for .NET dumps, gdb for ELF cores).

The dump goes to a temporary file beside the destination and is renamed
into place only once verified: a failed or interrupted get leaves nothing
behind. A verification failure exits with status 3. The file is created
readable by you only (0600): dumps hold process memory, secrets included.
Without -o the file is named after the dump's key (time, container, short ID
and file name) in the current directory, and -o DIR or -o DIR/ saves into
DIR under that name. An existing file is never overwritten without --force,
and --force replaces only a regular file. A character device or a FIFO
(-o /dev/null, -o /dev/stdout, a named pipe) is written in place as the
dump streams; a symbolic link to a file, a block device or a socket is
refused. Ctrl-C (or SIGTERM) exits 130 and saves nothing.

With -o - the dump is written to standard output as it streams; it is
verified at the end, and a failure then exits non-zero after the bytes were
written: check the exit status before using them.`,
		Example: examples(mode, `
  # Download into the current directory and print how to open it
  {{name}} get 3f2a9c1e

  # Choose the file name; replace it if it exists
  {{name}} get 3f2a9c1e -o /tmp/api-crash.dmp --force

  # Stream it to another tool (verified at the end: check the exit status)
  {{name}} get 3f2a9c1e -o - | zstd -19 > api-crash.dmp.zst

  # The .NET crash report that came with it: every thread's stack
  {{name}} get 3f2a9c1e --crash-report -o - | jq '.payload.threads[] | select(.crashed == "true")'`),
		Args: oneDump(mode, "get"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGet(cmd, o, f, args[0])
		},
	}
	o = newClientOptions(mode, cmd, "look for the ID in this namespace only (default: every namespace)")
	fs := cmd.Flags()
	fs.StringVar(&f.pod, "pod", "", "look for the ID among this pod's dumps only")
	fs.StringVarP(&f.output, "output", "o", "", "file (or directory) to write, or - for standard output (default: the key's file name in the current directory)")
	fs.BoolVar(&f.force, "force", false, "replace the output file if it exists (a regular file only)")
	fs.StringVar(&f.progress, "progress", "auto", "progress bar on standard error: auto (when it is a terminal), always or never")
	fs.BoolVar(&f.crashReport, "crash-report", false, "download the dump's .NET crash report (<dump>.crashreport.json, every thread's stack) instead of the dump, verified the same way")
	registerCompletions(cmd, o)
	return cmd
}

func runGet(cmd *cobra.Command, o *clientOptions, f getFlags, ref string) (err error) {
	// streamed names where bytes went before the dump was verified, if
	// anywhere: an interrupted get must say so, or that nothing was saved.
	var streamed string
	ctx, cancel := commandContext(cmd)
	defer cancel()
	defer func() {
		if err == nil || ctx.Err() == nil {
			return
		}
		msg := "interrupted; nothing saved"
		if streamed != "" {
			msg = "interrupted; the bytes written to " + streamed + " are not the whole dump"
		}
		err = &exitError{code: exitInterrupted, err: errors.New(msg)}
	}()
	switch f.progress {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("--progress %q: want auto, always or never", f.progress)
	}
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.output == "-" && isTerminal(stdout) {
		return errors.New("refusing to write a binary dump to a terminal: redirect standard output or use -o FILE")
	}
	s, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	defer o.report(stderr, s)
	d, err := s.cat.Resolve(ctx, ref, catalog.Query{Namespace: o.explicitNamespace(), Pod: f.pod})
	if err != nil {
		return err
	}
	showProgress := f.progress == "always" || (f.progress == "auto" && isTerminal(stderr))
	what, name := "dump", localName(d)
	if f.crashReport {
		rd, err := d.CrashReport()
		if err != nil {
			return err
		}
		what, name = "crash report", name+manifest.CrashReportSuffix
		d = rd
	}

	if f.output == "-" {
		streamed = "standard output"
		return streamTo(ctx, s, d, stdout, stderr, showProgress, streamed)
	}

	dst, err := destination(f.output, name, f.force)
	if err != nil {
		return err
	}
	if dst.inPlace {
		// A character device or a FIFO (-o /dev/null, -o /dev/stdout, a
		// named pipe): "write there", as it streams. It is never
		// replaced.
		out, err := os.OpenFile(dst.path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", dst.path, err)
		}
		defer out.Close()
		if isTerminal(out) {
			return errors.New("refusing to write a binary dump to a terminal: redirect standard output or use -o FILE")
		}
		streamed = dst.path
		if err := streamTo(ctx, s, d, out, stderr, showProgress, dst.path); err != nil {
			return err
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("write %s: %w", dst.path, err)
		}
		fmt.Fprintf(stderr, "Wrote %s %s to %s, SHA-256 verified.\n", what, d.ShortID, dst.path)
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst.path), "."+filepath.Base(dst.path)+".*.part")
	if err != nil {
		return fmt.Errorf("create %s: %w", dst.path, errors.Unwrap(err))
	}
	saved := false
	defer func() {
		if !saved {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bar := startProgress(stderr, showProgress, d.StoredSize)
	res, err := s.cat.Fetch(ctx, d, bar.writer(tmp), bar.set)
	bar.stop()
	if ie := (*catalog.IntegrityError)(nil); errors.As(err, &ie) {
		return &exitError{code: exitIntegrity, err: fmt.Errorf("%w; nothing was saved", err)}
	}
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", dst.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst.path, err)
	}
	if err := place(tmp.Name(), dst.path, f.force); err != nil {
		return err
	}
	saved = true

	who := "unattributed"
	if d.Parsed && d.Namespace != "_unknown" {
		who = d.Namespace + "/" + d.Pod
	}
	fmt.Fprintf(stderr, "Saved %s (%s, %s %s of %s, SHA-256 verified against the %s).\n",
		dst.path, humanBytes(res.Size), what, d.ShortID, who, res.Expected.Source)
	if f.crashReport {
		return nil
	}
	if oc := openCommand(d.Manifest, dst.path); oc.command != "" {
		fmt.Fprintf(stderr, "Open it with:\n  %s\n", oc.command)
		if oc.note != "" {
			fmt.Fprintf(stderr, "%s\n", oc.note)
		}
	}
	return nil
}

// exitInterrupted is the status of a get stopped by Ctrl-C or SIGTERM, as
// a shell reports a command killed by SIGINT.
const exitInterrupted = 130

// streamTo writes the dump to w as it streams, verified at the end: a
// failure then exits non-zero after the bytes were written.
func streamTo(ctx context.Context, s *session, d *catalog.Dump, w io.Writer, stderr io.Writer, showProgress bool, where string) error {
	bar := startProgress(stderr, showProgress, d.StoredSize)
	_, err := s.cat.Fetch(ctx, d, bar.writer(w), bar.set)
	bar.stop()
	if ie := (*catalog.IntegrityError)(nil); errors.As(err, &ie) {
		return &exitError{code: exitIntegrity, err: fmt.Errorf("%w; the bytes written to %s are NOT the dump: discard them", err, where)}
	}
	return err
}

// target is where get writes: a path to create (or, with --force, to
// replace when it is a regular file), or a device or FIFO to write in
// place.
type target struct {
	path    string
	inPlace bool
}

// destination decides what -o out means. A trailing "/" or an existing
// directory: save into it under name. A regular file: replaced only with
// --force, by renaming the verified download over it. A character device
// or a FIFO, or a symbolic link to one (/dev/stdout): written in place.
// Anything else (a symbolic link to a file, a block device, a socket) is
// refused: get never renames over it, with or without --force. As root,
// renaming a download over /dev/null would have replaced the device.
func destination(out, name string, force bool) (target, error) {
	if out == "" {
		out = name
	}
	if strings.HasSuffix(out, "/") {
		st, err := os.Stat(out)
		if err != nil || !st.IsDir() {
			return target{}, fmt.Errorf("-o %s: no such directory", out)
		}
	}
	st, err := os.Lstat(out)
	if err == nil && st.Mode()&fs.ModeSymlink != 0 {
		// Followed only to a device or FIFO: the link names where to
		// write, not a file to replace.
		if tst, terr := os.Stat(out); terr == nil && (tst.Mode()&fs.ModeCharDevice != 0 || tst.Mode()&fs.ModeNamedPipe != 0) {
			return target{path: out, inPlace: true}, nil
		} else if terr == nil && tst.IsDir() {
			st = tst
		} else {
			return target{}, fmt.Errorf("%s is a symbolic link: get does not write through or replace links to files; give the path it points to, or -o another file", out)
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(out)
		if dst, err := os.Stat(dir); err != nil || !dst.IsDir() {
			return target{}, fmt.Errorf("-o %s: directory %s does not exist", out, dir)
		}
		return target{path: out}, nil
	case err != nil:
		return target{}, fmt.Errorf("-o %s: %w", out, err)
	case st.IsDir():
		return destination(filepath.Join(out, name), name, force)
	case st.Mode().IsRegular():
		if !force {
			return target{}, fmt.Errorf("%s already exists: pass --force to overwrite it, or -o another file", out)
		}
		return target{path: out}, nil
	case st.Mode()&fs.ModeCharDevice != 0, st.Mode()&fs.ModeNamedPipe != 0:
		return target{path: out, inPlace: true}, nil
	case st.Mode()&fs.ModeDevice != 0:
		return target{}, fmt.Errorf("%s is a block device: refusing to write a dump there", out)
	case st.Mode()&fs.ModeSocket != 0:
		return target{}, fmt.Errorf("%s is a socket: refusing to write a dump there", out)
	default:
		return target{}, fmt.Errorf("%s is not a regular file: refusing to write a dump there", out)
	}
}

// place moves the verified temporary file to dst. Without force it must
// not replace a file that appeared meanwhile: a hard link fails if dst
// exists; filesystems without hard links get a check and a rename.
func place(tmp, dst string, force bool) error {
	if force {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("rename into place %s: %w", dst, err)
		}
		return nil
	}
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		_ = os.Remove(tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s appeared while downloading: pass --force to overwrite it", dst)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s appeared while downloading: pass --force to overwrite it", dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("rename into place %s: %w", dst, err)
	}
	return nil
}

// localName is the default file name of a fetched dump: the key's last
// segment (time, container, short ID, file name: unique and sortable)
// without the ".zst" of a compressed object.
func localName(d *catalog.Dump) string {
	name := path.Base(d.Key)
	compressed := d.Compressed
	if d.Manifest != nil {
		compressed = d.Manifest.Object.Compression == manifest.CompressionZstd
	}
	if compressed {
		if n, ok := strings.CutSuffix(name, ".zst"); ok && n != "" {
			name = n
		}
	}
	return name
}

// openHint is how to open a fetched dump.
type openHint struct {
	command string
	note    string
}

// openCommand chooses the tool for a dump from its manifest: .NET dumps
// (a crash report came with it, or the process is dotnet) open with
// dotnet-dump, other ELF cores with gdb and the executable, heap dumps with
// their tools.
func openCommand(m *manifest.Manifest, file string) openHint {
	if m == nil {
		return openHint{}
	}
	q := shellQuote(file)
	exe := ""
	if m.Core != nil {
		exe = m.Core.Exe
	}
	if exe == "" && m.Process != nil {
		exe = m.Process.Exe
	}
	if isDotnet(m, exe) {
		return openHint{command: "dotnet-dump analyze " + q}
	}
	switch m.Kind {
	case "elf-core":
		if exe == "" {
			return openHint{command: "gdb -c " + q, note: "(the executable is unknown: add it as gdb's first argument for symbols)"}
		}
		note := "(" + exe + " is the path inside the container: gdb needs the same binary, from the image"
		if m.Pod != nil && m.Pod.Image != "" {
			note += " " + m.Pod.Image
		}
		return openHint{command: "gdb " + shellQuote(exe) + " " + q, note: note + ")"}
	case "hprof":
		return openHint{command: "jvisualvm --openfile " + q, note: "(or open it in Eclipse MAT)"}
	case "heapsnapshot":
		return openHint{command: "# Chrome DevTools > Memory > Load profile: " + q}
	}
	return openHint{}
}

func isDotnet(m *manifest.Manifest, exe string) bool {
	if m.CrashReport != nil || m.Kind == "minidump" {
		return true
	}
	if path.Base(exe) == "dotnet" {
		return true
	}
	return m.Core != nil && strings.Contains(m.Core.Args, ".dll")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
