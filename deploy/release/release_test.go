package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const repoRoot = "../.."

// testVersion has build metadata, so the + -> - of the image tag and the
// chart version's + are exercised.
const testVersion = "v1.2.3-rc.1+test.abc"

// testCommit is stamped like the Makefile's COMMIT: `version` must print
// it whatever -buildvcs says (GOFLAGS=-buildvcs=false left "commit unknown").
const testCommit = "0123456789abcdef0123456789abcdef01234567"

func allPlatforms(t *testing.T) []platform {
	ps, err := parsePlatforms(strings.Join(defaultPlatforms, ","))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func helmBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CRASHDUMP_HELM_BIN"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join(repoRoot, "bin", "helm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm not found at %s: run `make tools`", p)
	}
	return p
}

// TestRelease builds the release into a temporary directory and checks it
// the way krew, helm and containerd will read it: the krew manifest names
// the version and each archive's real SHA-256, each archive holds exactly
// the files the manifest declares, the host's binary prints the stamped
// version, the chart carries the versions, the image archive is an index of
// the Linux platforms, and SHA256SUMS covers every artifact.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds crashdump for four platforms; skipped in -short")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), "dist")
	c := config{
		version: testVersion, commit: testCommit, out: out, root: repoRoot,
		platforms:      allPlatforms(t),
		imagePlatforms: []platform{{"linux", "amd64"}, {"linux", "arm64"}},
		image:          "example.com/crashdump", helm: helmBin(t), goCmd: goCmd,
		logf: t.Logf,
	}
	if err := run(c); err != nil {
		t.Fatal(err)
	}

	// The krew manifest.
	mb, err := os.ReadFile(filepath.Join(out, "crashdump.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m krewPlugin
	if err := yaml.UnmarshalStrict(mb, &struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       *struct {
			Version          string         `json:"version"`
			Homepage         string         `json:"homepage"`
			ShortDescription string         `json:"shortDescription"`
			Description      string         `json:"description"`
			Caveats          string         `json:"caveats"`
			Platforms        []krewPlatform `json:"platforms"`
		} `json:"spec"`
	}{}); err != nil {
		t.Errorf("krew manifest has fields krew does not know: %v", err)
	}
	if err := yaml.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Version != testVersion {
		t.Errorf("krew spec.version %q, want %q", m.Spec.Version, testVersion)
	}
	if strings.Contains(string(mb), placeholderSHA) || strings.Contains(string(mb), "PLACEHOLDER") {
		t.Error("the rendered krew manifest still holds a placeholder")
	}
	if len(m.Spec.Platforms) != len(c.platforms) {
		t.Errorf("krew manifest has %d platforms, the release builds %d", len(m.Spec.Platforms), len(c.platforms))
	}
	for _, p := range c.platforms {
		t.Run(p.os+"_"+p.arch, func(t *testing.T) {
			kp, err := m.platform(p)
			if err != nil {
				t.Fatal(err)
			}
			name := "crashdump_" + p.os + "_" + p.arch + ".tar.gz"
			if want := "https://github.com/crashdump-io/crashdump/releases/download/" + testVersion + "/" + name; kp.URI != want {
				t.Errorf("uri %q, want %q", kp.URI, want)
			}
			archive, err := os.ReadFile(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(archive); kp.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("manifest sha256 %s, the archive's is %x", kp.SHA256, sum)
			}
			files := untar(t, archive)
			var declared, got []string
			for _, f := range kp.Files {
				declared = append(declared, f.From)
			}
			for n := range files {
				got = append(got, n)
			}
			slices.Sort(declared)
			slices.Sort(got)
			if !reflect.DeepEqual(got, declared) {
				t.Errorf("archive holds %v, the manifest declares %v", got, declared)
			}
			bin, ok := files[kp.Bin]
			if !ok {
				t.Fatalf("archive has no bin %q", kp.Bin)
			}
			checkBinaryPlatform(t, bin, p)
			if p.os == runtime.GOOS && p.arch == runtime.GOARCH {
				exe := filepath.Join(t.TempDir(), "crashdump")
				if err := os.WriteFile(exe, bin, 0o755); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(exe, "version")
				cmd.Env = []string{"HOME=" + t.TempDir(), "KUBECONFIG=" + filepath.Join(t.TempDir(), "none")}
				vout, err := cmd.CombinedOutput()
				if want := "crashdump " + testVersion + " (commit " + testCommit + ","; err != nil || !strings.HasPrefix(string(vout), want) {
					t.Errorf("crashdump version: %v, %q; want it to start with %q", err, vout, want)
				}
			}
		})
	}

	// The chart.
	chart := filepath.Join(out, "crashdump-1.2.3-rc.1+test.abc.tgz")
	cb, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(untar(t, cb)["crashdump/Chart.yaml"], &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != "1.2.3-rc.1+test.abc" || meta.AppVersion != "v1.2.3-rc.1-test.abc" {
		t.Errorf("packaged Chart.yaml version %q appVersion %q, want 1.2.3-rc.1+test.abc and the image tag v1.2.3-rc.1-test.abc", meta.Version, meta.AppVersion)
	}

	checkImageArchive(t, filepath.Join(out, "crashdump-image.oci.tar"), "example.com/crashdump:v1.2.3-rc.1-test.abc")

	// SHA256SUMS: every top-level file but itself, each sum right.
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS: %s %s, the file's is %x", name, sum, h)
		}
		listed[name] = true
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if e.Type().IsRegular() && e.Name() != "SHA256SUMS" && !listed[e.Name()] {
			t.Errorf("SHA256SUMS does not list %s", e.Name())
		}
	}
	if len(listed) != len(c.platforms)+3 {
		t.Errorf("SHA256SUMS lists %v: want %d archives, the krew manifest, the chart and the image", listed, len(c.platforms))
	}

	// A second release into a non-empty directory would mix artifacts.
	if err := run(c); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("release into a non-empty directory: %v, want refused", err)
	}
}

func untar(t *testing.T, gz []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
}

// checkBinaryPlatform fails unless bin is an executable for p.
func checkBinaryPlatform(t *testing.T, bin []byte, p platform) {
	t.Helper()
	switch p.os {
	case "linux":
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s binary is not ELF: %v", p, err)
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.arch]
		if f.Machine != want {
			t.Errorf("%s binary is for %s", p, f.Machine)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s binary is dynamically linked", p)
			}
		}
	case "darwin":
		f, err := macho.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s binary is not Mach-O: %v", p, err)
		}
		want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[p.arch]
		if f.Cpu != want {
			t.Errorf("%s binary is for %s", p, f.Cpu)
		}
	default:
		t.Fatalf("no check for %s", p)
	}
}

// checkImageArchive reads the OCI archive as containerd's importer does:
// index.json names one image index, which lists linux/amd64 and
// linux/arm64 images, each configured as the Dockerfile's.
func checkImageArchive(t *testing.T, p, wantName string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(tr); err != nil {
			t.Fatal(err)
		} else if h.Typeflag == tar.TypeReg {
			files[h.Name] = b
		}
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Error("image archive has no oci-layout file")
	}
	type descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
		Platform    *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	}
	type index struct {
		Manifests []descriptor `json:"manifests"`
	}
	blob := func(d descriptor) []byte {
		b, ok := files["blobs/"+strings.Replace(d.Digest, ":", "/", 1)]
		if !ok {
			t.Fatalf("blob %s missing", d.Digest)
		}
		return b
	}
	var top index
	if err := json.Unmarshal(files["index.json"], &top); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" ||
		top.Manifests[0].Annotations["io.containerd.image.name"] != wantName {
		t.Fatalf("index.json lists %+v, want one image index named %s", top.Manifests, wantName)
	}
	var idx index
	if err := json.Unmarshal(blob(top.Manifests[0]), &idx); err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		plats = append(plats, d.Platform.OS+"/"+d.Platform.Architecture)
		var man struct {
			Config descriptor `json:"config"`
		}
		if err := json.Unmarshal(blob(d), &man); err != nil {
			t.Fatal(err)
		}
		var cf struct {
			Architecture string `json:"architecture"`
			Config       struct {
				User       string            `json:"User"`
				Entrypoint []string          `json:"Entrypoint"`
				Cmd        []string          `json:"Cmd"`
				Labels     map[string]string `json:"Labels"`
			} `json:"config"`
		}
		if err := json.Unmarshal(blob(man.Config), &cf); err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != d.Platform.Architecture || cf.Config.User != "65532:65532" ||
			!reflect.DeepEqual(cf.Config.Entrypoint, []string{"/crashdump"}) || !reflect.DeepEqual(cf.Config.Cmd, []string{"agent"}) ||
			cf.Config.Labels["org.opencontainers.image.version"] != testVersion ||
			cf.Config.Labels["org.opencontainers.image.source"] != "https://github.com/crashdump-io/crashdump" {
			t.Errorf("%s image config %+v", d.Platform.Architecture, cf)
		}
	}
	if !reflect.DeepEqual(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("image index lists %v, want linux/amd64 and linux/arm64", plats)
	}
}

// TestRenderKrew holds deploy/krew/crashdump.yaml to placeholders the
// renderer replaces, and the renderer to refusing a manifest that does not
// match what is built.
func TestRenderKrew(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, krewSource))
	if err != nil {
		t.Fatal(err)
	}
	sums := map[platform]string{}
	for i, p := range allPlatforms(t) {
		sums[p] = strings.Repeat(string(rune('a'+i)), 64)
	}
	without := func(drop platform) map[platform]string {
		m := map[platform]string{}
		for p, s := range sums {
			if p != drop {
				m[p] = s
			}
		}
		return m
	}
	with := func(add platform) map[platform]string {
		m := without(platform{})
		m[add] = strings.Repeat("f", 64)
		return m
	}
	for _, tt := range []struct {
		name    string
		src     string
		sums    map[platform]string
		wantErr string
	}{
		{name: "source", src: string(src), sums: sums},
		{name: "real sha in the source", src: strings.Replace(string(src), placeholderSHA, strings.Repeat("1", 64), 1), sums: sums,
			wantErr: "not the placeholder"},
		{name: "released version in the source", src: strings.Replace(string(src), "version: v0.0.0", "version: v1.0.0", 1), sums: sums,
			wantErr: "not the placeholder v0.0.0"},
		{name: "released uri in the source", src: strings.Replace(string(src), "download/v0.0.0/crashdump_linux_arm64", "download/v1.0.0/crashdump_linux_arm64", 1), sums: sums,
			wantErr: "not the placeholder https://"},
		{name: "platform not built", src: string(src), sums: without(platform{"darwin", "amd64"}), wantErr: "darwin/amd64, which is not built"},
		{name: "platform missing from the manifest", src: string(src), sums: with(platform{"linux", "riscv64"}), wantErr: "linux/riscv64 is built but has no entry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := renderKrew([]byte(tt.src), testVersion, tt.sums)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("renderKrew error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte(placeholderSHA)) || bytes.Contains(out, []byte("/v0.0.0/")) || bytes.Contains(out, []byte("PLACEHOLDER")) {
				t.Errorf("placeholders left:\n%s", out)
			}
			var m krewPlugin
			if err := yaml.Unmarshal(out, &m); err != nil {
				t.Fatalf("rendered manifest: %v\n%s", err, out)
			}
			if m.Spec.Version != testVersion {
				t.Errorf("version %q", m.Spec.Version)
			}
			for p, sum := range tt.sums {
				kp, err := m.platform(p)
				if err != nil {
					t.Fatal(err)
				}
				if kp.SHA256 != sum || kp.URI != archiveURL(testVersion, p) {
					t.Errorf("%s: uri %s sha256 %s", p, kp.URI, kp.SHA256)
				}
			}
			// Everything else is the source's.
			var a, b map[string]any
			_ = yaml.Unmarshal(src, &a)
			_ = yaml.Unmarshal(out, &b)
			for _, s := range []map[string]any{a, b} {
				spec := s["spec"].(map[string]any)
				delete(spec, "version")
				for _, p := range spec["platforms"].([]any) {
					delete(p.(map[string]any), "uri")
					delete(p.(map[string]any), "sha256")
				}
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("rendering changed more than version, uri and sha256")
			}
		})
	}
}

// TestArchiveDeterministic: the same files give the same archive (so the
// same SHA-256 in the manifest), sorted, owned by 0:0, at a fixed time.
func TestArchiveDeterministic(t *testing.T) {
	dir := t.TempDir()
	for n, data := range map[string]string{"crashdump": "binary", "LICENSE": "text"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files := []archiveFile{{"crashdump", filepath.Join(dir, "crashdump"), 0o755}, {"LICENSE", filepath.Join(dir, "LICENSE"), 0o644}}
	a, b := filepath.Join(dir, "a.tar.gz"), filepath.Join(dir, "b.tar.gz")
	if err := writeArchive(a, files); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(files[0].src, epoch.AddDate(30, 0, 0), epoch.AddDate(30, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := writeArchive(b, []archiveFile{files[1], files[0]}); err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("same files, different archives")
	}
	zr, err := gzip.NewReader(bytes.NewReader(ab))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q time %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: owner %d:%d %q:%q mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		if want := map[string]int64{"crashdump": 0o755, "LICENSE": 0o644}[h.Name]; h.Mode != want {
			t.Errorf("%s mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	if !reflect.DeepEqual(names, []string{"LICENSE", "crashdump"}) {
		t.Errorf("entries %v, want sorted LICENSE, crashdump", names)
	}
}

// TestBuildMatchesMakefile: the release builds and tags like the Makefile,
// and its image is configured like the Dockerfile's.
func TestBuildMatchesMakefile(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "LDFLAGS := " + ldflags("$(VERSION)", "$(COMMIT)") + "\n"; !bytes.Contains(mk, []byte(want)) {
		t.Errorf("Makefile has no %q: the release would build differently from make build", strings.TrimSpace(want))
	}
	dmk, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "deploy.mk"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dmk, []byte("IMAGE_TAG       ?= $(subst +,-,$(VERSION))")) || imageTag("v1.2.3+abc.dirty") != "v1.2.3-abc.dirty" {
		t.Error("the release's image tag is not deploy.mk's IMAGE_TAG")
	}
	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"USER " + imageUser + "\n", `ENTRYPOINT ["` + binaryInImage + `"]`, `CMD ["` + imageCmd + `"]`,
		`COPY --from=build /out/crashdump ` + binaryInImage + "\n"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("Dockerfile has no %q, which the release image copies", want)
		}
	}
	labels, err := imageLabels(repoRoot, "v9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(labels, "org.opencontainers.image.version=v9.9.9") || !slices.Contains(labels, "org.opencontainers.image.title=crashdump") {
		t.Errorf("labels from the Dockerfile %q", labels)
	}
	for _, tt := range []struct{ version, chart string }{
		{"v1.2.3", "1.2.3"}, {"v0.0.0-dev+4bd3a49.dirty", "0.0.0-dev+4bd3a49.dirty"}, {"v1.2.3-4-gabcdef0", "1.2.3-4-gabcdef0"},
	} {
		if got := chartVersion(tt.version); got != tt.chart {
			t.Errorf("chartVersion(%q) = %q, want %q", tt.version, got, tt.chart)
		}
	}
}
