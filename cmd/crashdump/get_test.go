package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// dirNames lists a directory, hidden files (partial downloads) included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func testGet(t *testing.T, w *world) {
	tests := []struct {
		name     string
		dump     string
		out      string // -o; "" for the default name, "." for a directory
		wantOpen string // in the printed command
	}{
		{"zstd ELF core with crash report", "dotnet", "crash.dmp", "dotnet-dump analyze "},
		{"raw random bytes", "raw", "", ""},
		{"zstd multi-frame, into a directory", "frames", ".", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := w.dumps[tt.dump]
			dir := t.TempDir()
			args := []string{"get", d.ShortID}
			want := filepath.Join(dir, localName(d))
			switch tt.out {
			case "":
				t.Chdir(dir)
				want = localName(d)
			case ".":
				args = append(args, "-o", dir)
			default:
				want = filepath.Join(dir, tt.out)
				args = append(args, "-o", want)
			}
			r := w.cli(t, args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			got, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (dir holds %v)", err, dirNames(t, dir))
			}
			if !bytes.Equal(got, w.originals[tt.dump]) {
				t.Fatalf("fetched %d bytes differ from the %d the agent collected", len(got), len(w.originals[tt.dump]))
			}
			if names := dirNames(t, dir); len(names) != 1 {
				t.Errorf("directory holds %v, want only the dump", names)
			}
			if st, err := os.Stat(want); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600 (dumps hold secrets)", st.Mode())
			}
			if !strings.Contains(r.stderr, "SHA-256 verified against the manifest") || !strings.Contains(r.stderr, want) {
				t.Errorf("stderr: %s", r.stderr)
			}
			if tt.wantOpen != "" && !strings.Contains(r.stderr, tt.wantOpen+want) {
				t.Errorf("stderr lacks %q: %s", tt.wantOpen+want, r.stderr)
			}
			if strings.Contains(r.stderr, "%") {
				t.Errorf("a progress bar was drawn on a non-terminal: %q", r.stderr)
			}
		})
	}

	t.Run("stdout", func(t *testing.T) {
		d := w.dumps["frames"]
		r := w.cli(t, "get", d.ShortID, "-o", "-")
		if r.code != 0 || r.stdout != string(w.originals["frames"]) {
			t.Fatalf("exit %d, %d bytes on stdout, want %d: %s", r.code, len(r.stdout), len(w.originals["frames"]), r.stderr)
		}
	})

	t.Run("no overwrite without --force", func(t *testing.T) {
		d := w.dumps["raw"]
		out := filepath.Join(t.TempDir(), "dump")
		if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := w.cli(t, "get", d.ShortID, "-o", out)
		if b, _ := os.ReadFile(out); r.code != 1 || string(b) != "precious" || !strings.Contains(r.stderr, "--force") {
			t.Fatalf("exit %d, file %q: %s", r.code, b, r.stderr)
		}
		r = w.cli(t, "get", d.ShortID, "-o", out, "--force", "--progress", "always")
		if b, _ := os.ReadFile(out); r.code != 0 || !bytes.Equal(b, w.originals["raw"]) {
			t.Fatalf("--force: exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "100%") || !strings.Contains(r.stderr, "/s") {
			t.Errorf("--progress always drew no bar: %q", r.stderr)
		}
		if names := dirNames(t, filepath.Dir(out)); strings.Join(names, ",") != "dump" {
			t.Errorf("directory holds %v", names)
		}
	})
}

// testIDs: abbreviated IDs resolve when unambiguous; a short ID shared by
// two dumps (an 8-hex collision, made here by copying a dump) is an error
// listing both, resolved by more digits or a narrower scope.
func testIDs(t *testing.T, w *world) {
	var all []string
	for _, d := range w.dumps {
		all = append(all, d.Manifest.ID)
	}
	raw := w.dumps["raw"]
	t.Run("shortest unique prefix", func(t *testing.T) {
		p := uniquePrefix(all, raw.Manifest.ID)
		out := filepath.Join(t.TempDir(), "d")
		r := w.cli(t, "get", p, "-o", out)
		if b, _ := os.ReadFile(out); r.code != 0 || !bytes.Equal(b, w.originals["raw"]) {
			t.Fatalf("get %s: exit %d: %s", p, r.code, r.stderr)
		}
	})

	// A second dump with the same short ID in another pod.
	twinID := raw.Manifest.ID[:8] + strings.Repeat("0", 24)
	twinKey := strings.Replace(raw.Key, "prod/api-2/", "prod/api-3/", 1)
	if twinKey == raw.Key {
		t.Fatalf("could not derive a twin key from %s", raw.Key)
	}
	twin := *raw.Manifest
	twinPod := *twin.Pod
	twinPod.Name = "api-3"
	twin.ID, twin.Pod, twin.Object.Key = twinID, &twinPod, twinKey
	body, err := manifest.Marshal(&twin)
	if err != nil {
		t.Fatal(err)
	}
	w.overwrite(t, twinKey, w.stored(t, raw.Key))
	w.overwrite(t, twinKey+".json", body)

	t.Run("ambiguous", func(t *testing.T) {
		for _, cmd := range []string{"get", "describe"} {
			r := w.cli(t, cmd, raw.ShortID)
			if r.code != 1 || !strings.Contains(r.stderr, "ambiguous") || !strings.Contains(r.stderr, raw.Key) || !strings.Contains(r.stderr, twinKey) {
				t.Errorf("%s %s: exit %d, want an ambiguity listing both keys: %s", cmd, raw.ShortID, r.code, r.stderr)
			}
		}
	})
	t.Run("more digits", func(t *testing.T) {
		r := w.cli(t, "describe", raw.Manifest.ID[:16])
		if r.code != 0 || field(r.stdout, "ID") != raw.Manifest.ID {
			t.Errorf("describe %s: exit %d: %s", raw.Manifest.ID[:16], r.code, r.stderr)
		}
		r = w.cli(t, "describe", twinID[:12])
		if r.code != 0 || field(r.stdout, "ID") != twinID || field(section(r.stdout, "Pod"), "Name") != "api-3" {
			t.Errorf("describe %s: exit %d: %s%s", twinID[:12], r.code, r.stdout, r.stderr)
		}
	})
	t.Run("narrower scope", func(t *testing.T) {
		r := w.cli(t, "describe", raw.ShortID, "-n", "prod", "--pod", "api-2")
		if r.code != 0 || field(r.stdout, "ID") != raw.Manifest.ID {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("key", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "d")
		r := w.cli(t, "get", twinKey, "-o", out)
		if b, _ := os.ReadFile(out); r.code != 0 || !bytes.Equal(b, w.originals["raw"]) {
			t.Errorf("get %s: exit %d: %s", twinKey, r.code, r.stderr)
		}
	})
}

// uniquePrefix is the shortest prefix (at least 4 digits) of id that no
// other ID shares.
func uniquePrefix(ids []string, id string) string {
	for n := catalog.MinIDLength; n < len(id); n++ {
		shared := false
		for _, o := range ids {
			if o != id && strings.HasPrefix(o, id[:n]) {
				shared = true
			}
		}
		if !shared {
			return id[:n]
		}
	}
	return id
}

// testCorrupt: a stored object whose bytes changed makes get fail loudly
// with exit status 3 and leave nothing behind, compressed or not.
func testCorrupt(t *testing.T, w *world) {
	tests := []struct {
		dump    string
		wantErr string
	}{
		{"late", "the zstd stream does not decode"},
		{"unknown", "SHA-256 mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.dump, func(t *testing.T) {
			d := w.dumps[tt.dump]
			b := w.stored(t, d.Key)
			b[len(b)/2] ^= 0xff
			w.overwrite(t, d.Key, b)

			dir := t.TempDir()
			r := w.cli(t, "get", d.ShortID, "-o", filepath.Join(dir, "dump"))
			if r.code != exitIntegrity {
				t.Errorf("exit %d, want %d", r.code, exitIntegrity)
			}
			for _, want := range []string{tt.wantErr, "corrupt", "nothing was saved", d.Key} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q: %s", want, r.stderr)
				}
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left behind %v", names)
			}
			r = w.cli(t, "get", d.ShortID, "-o", "-")
			if r.code != exitIntegrity || !strings.Contains(r.stderr, "NOT the dump") {
				t.Errorf("-o -: exit %d: %s", r.code, r.stderr)
			}
		})
	}
}

func TestRenderProgress(t *testing.T) {
	tests := []struct {
		n, total, written int64
		rate              float64
		want              []string
	}{
		{50 << 20, 100 << 20, 50 << 20, 10 << 20, []string{"[", "50%", "50.0MiB/100MiB", "10.0MiB/s", "ETA 5s"}},
		{100 << 20, 100 << 20, 100 << 20, 10 << 20, []string{"100%", "100MiB/100MiB"}},
		{5 << 20, -1, 0, 1 << 20, []string{"5.0MiB", "1.0MiB/s"}},
		// zstd: 61.9 MiB read of a 509 MiB dump; the bytes saved are shown.
		{62 << 20, 62 << 20, 509 << 20, 30 << 20, []string{"100%", "62.0MiB/62.0MiB", "509MiB written"}},
	}
	for _, tt := range tests {
		got := renderProgress(tt.n, tt.total, tt.written, tt.rate, 80)
		if len(got) > 80 {
			t.Errorf("%q is wider than 80", got)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("renderProgress(%d, %d) = %q, lacks %q", tt.n, tt.total, got, w)
			}
		}
	}
	if got := renderProgress(100<<20, 100<<20, 0, 1, 80); strings.Contains(got, "ETA") {
		t.Errorf("finished bar shows an ETA: %q", got)
	}
}

func TestOpenCommand(t *testing.T) {
	core := func(exe, args string) *manifest.Core { return &manifest.Core{Exe: exe, Args: args} }
	tests := []struct {
		name string
		m    *manifest.Manifest
		want string
	}{
		{"no manifest", nil, ""},
		{"crash report", &manifest.Manifest{Kind: "elf-core", CrashReport: &manifest.CrashReport{}}, "dotnet-dump analyze f.dmp"},
		{"dotnet host", &manifest.Manifest{Kind: "elf-core", Core: core("/usr/share/dotnet/dotnet", "dotnet app.dll")}, "dotnet-dump analyze f.dmp"},
		{"apphost with dll args", &manifest.Manifest{Kind: "elf-core", Core: core("/app/Api", "/app/Api /app/Api.dll")}, "dotnet-dump analyze f.dmp"},
		{"native core", &manifest.Manifest{Kind: "elf-core", Core: core("/usr/bin/sleep", "sleep 3600")}, "gdb /usr/bin/sleep f.dmp"},
		{"core, exe from process", &manifest.Manifest{Kind: "elf-core", Process: &manifest.Process{Exe: "/bin/app"}}, "gdb /bin/app f.dmp"},
		{"core, exe unknown", &manifest.Manifest{Kind: "elf-core"}, "gdb -c f.dmp"},
		{"minidump", &manifest.Manifest{Kind: "minidump"}, "dotnet-dump analyze f.dmp"},
		{"hprof", &manifest.Manifest{Kind: "hprof"}, "jvisualvm --openfile f.dmp"},
		{"unknown", &manifest.Manifest{Kind: "unknown"}, ""},
	}
	for _, tt := range tests {
		if got := openCommand(tt.m, "f.dmp").command; got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := openCommand(&manifest.Manifest{Kind: "elf-core"}, "my dump's.core").command; got != `gdb -c 'my dump'\''s.core'` {
		t.Errorf("quoting: %s", got)
	}
}

func TestLocalName(t *testing.T) {
	k := "p/ns/pod/20260102T101500Z_c_deadbeef_core.1"
	tests := []struct {
		d    catalog.Dump
		want string
	}{
		{catalog.Dump{Key: k + ".zst", KeyInfo: catalog.KeyInfo{Compressed: true}}, "20260102T101500Z_c_deadbeef_core.1"},
		{catalog.Dump{Key: k}, "20260102T101500Z_c_deadbeef_core.1"},
		// A dump whose own name ends in .zst, stored raw.
		{catalog.Dump{Key: k + ".zst", KeyInfo: catalog.KeyInfo{Compressed: true},
			Manifest: &manifest.Manifest{Object: manifest.Object{Compression: manifest.CompressionNone}}}, "20260102T101500Z_c_deadbeef_core.1.zst"},
	}
	for _, tt := range tests {
		if got := localName(&tt.d); got != tt.want {
			t.Errorf("localName(%s) = %s, want %s", tt.d.Key, got, tt.want)
		}
	}
}

// testGetCrashReport: --crash-report fetches the report the agent stored
// beside the dump, verified, byte for byte as createdump wrote it; a dump
// without one says so and saves nothing.
func testGetCrashReport(t *testing.T, w *world) {
	d := w.dumps["dotnet"]
	dir := t.TempDir()
	t.Chdir(dir)
	r := w.cli(t, "get", d.ShortID, "--crash-report")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := localName(d) + ".crashreport.json"
	got, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (dir holds %v)", err, dirNames(t, dir))
	}
	if !bytes.Equal(got, w.reports["dotnet"]) {
		t.Fatalf("fetched crash report (%d bytes) is not the one written (%d bytes)", len(got), len(w.reports["dotnet"]))
	}
	if !strings.Contains(r.stderr, "crash report "+d.ShortID) || !strings.Contains(r.stderr, "SHA-256 verified against the manifest") {
		t.Errorf("stderr: %s", r.stderr)
	}

	raw := w.dumps["raw"]
	r = w.cli(t, "get", raw.ShortID, "--crash-report", "-o", filepath.Join(dir, "none.json"))
	if r.code == 0 || !strings.Contains(r.stderr, "has no crash report") {
		t.Errorf("a dump without a report: exit %d, stderr %s", r.code, r.stderr)
	}
	if _, err := os.Lstat(filepath.Join(dir, "none.json")); !os.IsNotExist(err) {
		t.Errorf("a file was saved for a dump without a report: %v", err)
	}
}

// testGetDestinations: get writes where -o says without ever replacing
// what it must not (issue 19 H1). Before the fix `-o <fifo> --force` turned
// the FIFO into a regular file, and `-o /dev/null` advised --force, which as
// root would have renamed a download over the device.
func testGetDestinations(t *testing.T, w *world) {
	d := w.dumps["raw"]
	orig := w.originals["raw"]

	t.Run("fifo written in place, with and without --force", func(t *testing.T) {
		for _, force := range []bool{false, true} {
			fifo := filepath.Join(t.TempDir(), "pipe")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 1)
			go func() {
				f, err := os.Open(fifo)
				if err != nil {
					got <- nil
					return
				}
				b, _ := io.ReadAll(f)
				f.Close()
				got <- b
			}()
			args := []string{"get", d.ShortID, "-o", fifo}
			if force {
				args = append(args, "--force")
			}
			r := w.cli(t, args...)
			if r.code != 0 {
				t.Fatalf("force=%v: exit %d: %s", force, r.code, r.stderr)
			}
			if b := <-got; !bytes.Equal(b, orig) {
				t.Errorf("force=%v: the FIFO's reader got %d bytes, want the dump's %d", force, len(b), len(orig))
			}
			if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
				t.Errorf("force=%v: %s is no longer a FIFO (%v)", force, fifo, st.Mode())
			}
			if names := dirNames(t, filepath.Dir(fifo)); len(names) != 1 {
				t.Errorf("force=%v: directory holds %v", force, names)
			}
		}
	})

	t.Run("/dev/null written in place", func(t *testing.T) {
		for _, force := range []bool{false, true} {
			args := []string{"get", d.ShortID, "-o", os.DevNull}
			if force {
				args = append(args, "--force")
			}
			r := w.cli(t, args...)
			if r.code != 0 || strings.Contains(r.stderr, "--force") {
				t.Fatalf("force=%v: exit %d: %s", force, r.code, r.stderr)
			}
			if st, err := os.Lstat(os.DevNull); err != nil || st.Mode()&os.ModeCharDevice == 0 {
				t.Fatalf("%s is no longer a character device", os.DevNull)
			}
		}
	})

	t.Run("refused: symlink to a file, socket", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "precious")
		if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "link")
		if err := os.Symlink(file, link); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, "sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for _, tc := range []struct{ out, want string }{{link, "is a symbolic link"}, {sock, "is a socket"}} {
			for _, force := range []bool{false, true} {
				args := []string{"get", d.ShortID, "-o", tc.out}
				if force {
					args = append(args, "--force")
				}
				r := w.cli(t, args...)
				if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("-o %s force=%v: exit %d, want 1 and %q: %s", filepath.Base(tc.out), force, r.code, tc.want, r.stderr)
				}
			}
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced")
		}
		if b, _ := os.ReadFile(file); string(b) != "precious" {
			t.Errorf("the link's target was written: %q", b)
		}
		if names := dirNames(t, dir); strings.Join(names, ",") != "link,precious,sock" {
			t.Errorf("directory holds %v", names)
		}
	})

	t.Run("directories", func(t *testing.T) {
		dir := t.TempDir()
		r := w.cli(t, "get", d.ShortID, "-o", dir+"/")
		if b, _ := os.ReadFile(filepath.Join(dir, localName(d))); r.code != 0 || !bytes.Equal(b, orig) {
			t.Fatalf("-o DIR/: exit %d: %s", r.code, r.stderr)
		}
		missing := filepath.Join(dir, "no", "such")
		for _, out := range []string{missing + "/", filepath.Join(missing, "f.dmp")} {
			r := w.cli(t, "get", d.ShortID, "-o", out)
			if r.code != 1 || !strings.Contains(r.stderr, "does not exist") && !strings.Contains(r.stderr, "no such directory") || strings.Contains(r.stderr, ".part") {
				t.Errorf("-o %s: exit %d: %s", out, r.code, r.stderr)
			}
		}
	})

	t.Run("environment does not choose -o or --force", func(t *testing.T) {
		// CRASHDUMP_OUTPUT=json is ls's format; get saved the dump as a
		// file named "json".
		dir := t.TempDir()
		t.Chdir(dir)
		t.Setenv("CRASHDUMP_OUTPUT", "json")
		if err := os.WriteFile(localName(d), []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CRASHDUMP_FORCE", "true")
		r := w.cli(t, "get", d.ShortID)
		if b, _ := os.ReadFile(localName(d)); r.code != 1 || string(b) != "precious" || !strings.Contains(r.stderr, "--force") {
			t.Errorf("exit %d, file %q: %s", r.code, b, r.stderr)
		}
		if names := dirNames(t, dir); strings.Join(names, ",") != localName(d) {
			t.Errorf("directory holds %v, want only %s", names, localName(d))
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Ctrl-C before the first byte
		r := runCLIContext(t, ctx, "crashdump", append([]string{"get", d.ShortID, "-o", filepath.Join(dir, "d")}, w.storeArgs()...)...)
		if r.code != 130 || strings.TrimSpace(r.stderr) != "crashdump: interrupted; nothing saved" {
			t.Errorf("exit %d, stderr %q; want 130 and one line", r.code, r.stderr)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("directory holds %v", names)
		}
	})
}
