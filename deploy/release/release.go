package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

var (
	defaultPlatforms      = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}
	defaultImagePlatforms = []string{"linux/amd64", "linux/arm64"}
)

const (
	// krewSource is the krew manifest with placeholders, in the repository.
	krewSource = "deploy/krew/crashdump.yaml"
	chartDir   = "deploy/helm/crashdump"
	// releaseBase is where the archives are published, one directory per tag.
	releaseBase = "https://github.com/crashdump-io/crashdump/releases/download/"
	// The placeholders krewSource keeps and renderKrew replaces.
	placeholderVersion = "v0.0.0"

	imageArchive = "crashdump-image.oci.tar"
	krewManifest = "crashdump.yaml"
	sumsFile     = "SHA256SUMS"
	// binaryInImage is where the Dockerfile puts the binary; the chart's
	// DaemonSet runs it.
	binaryInImage = "/crashdump"
	// imageUser is the Dockerfile's USER: distroless "nonroot". The chart
	// runs the agent as 0 with capabilities; the CLI needs nothing.
	imageUser = "65532:65532"
	imageCmd  = "agent"
)

var placeholderSHA = strings.Repeat("0", 64)

// semver is the version form `make -s print-version` prints (and
// cmd/crashdump's TestVersion holds it to).
var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

type config struct {
	commit         string // stamped as main.commit, like the Makefile's COMMIT
	version        string
	out            string
	root           string
	platforms      []platform // CLI archives
	imagePlatforms []platform // linux only
	image          string
	imageTag       string
	caBundle       string
	helm           string
	goCmd          string
	logf           func(format string, args ...any)
}

type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "/" + p.arch }

func parsePlatforms(s string) ([]platform, error) {
	var ps []platform
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		o, a, ok := strings.Cut(f, "/")
		if !ok || o == "" || a == "" {
			return nil, fmt.Errorf("platform %q: want OS/ARCH", f)
		}
		p := platform{o, a}
		if slices.Contains(ps, p) {
			return nil, fmt.Errorf("platform %s given twice", p)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// archiveName is the krew archive of p, as the release URL names it.
func archiveName(p platform) string { return "crashdump_" + p.os + "_" + p.arch + ".tar.gz" }

func archiveURL(version string, p platform) string {
	return releaseBase + version + "/" + archiveName(p)
}

// ldflags are the Makefile's LDFLAGS (the test compares them): stripped,
// the version and commit stamped.
func ldflags(version, commit string) string {
	return "-s -w -X main.version=" + version + " -X main.commit=" + commit
}

// chartVersion is the chart's semver: the release version without its
// leading v (v1.2.3 -> 1.2.3, v0.0.0-dev+4bd3a49.dirty -> 0.0.0-dev+4bd3a49.dirty).
// Chart and agent are released together, so one number names both.
func chartVersion(version string) string { return strings.TrimPrefix(version, "v") }

// imageTag is the tag of the release image: the version, with + (build
// metadata, not allowed in a tag) replaced by -, as the Makefile's
// IMAGE_TAG does.
func imageTag(version string) string { return strings.ReplaceAll(version, "+", "-") }

func run(c config) error {
	if !semver.MatchString(c.version) {
		return fmt.Errorf("version %q is not semver with a leading v (v1.2.3, v0.0.0-dev+<commit>)", c.version)
	}
	if c.imageTag == "" {
		c.imageTag = imageTag(c.version)
	}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	for _, p := range c.imagePlatforms {
		if p.os != "linux" {
			return fmt.Errorf("image platform %s: the agent image is linux only", p)
		}
	}
	root, err := filepath.Abs(c.root)
	if err != nil {
		return err
	}
	c.root = root
	if c.out, err = filepath.Abs(c.out); err != nil {
		return err
	}
	if ents, err := os.ReadDir(c.out); err == nil && len(ents) > 0 {
		// A stale artifact would end up in SHA256SUMS beside the new ones.
		return fmt.Errorf("output directory %s is not empty (make release removes it first)", c.out)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	src, err := os.ReadFile(filepath.Join(c.root, krewSource))
	if err != nil {
		return fmt.Errorf("read krew manifest: %w", err)
	}
	var plugin krewPlugin
	if err := yaml.Unmarshal(src, &plugin); err != nil {
		return fmt.Errorf("parse %s: %w", krewSource, err)
	}

	binaries := map[platform]string{}
	for _, p := range append(slices.Clone(c.platforms), c.imagePlatforms...) {
		if _, ok := binaries[p]; ok {
			continue
		}
		dst := filepath.Join(c.out, "build", p.os+"_"+p.arch, "crashdump")
		c.logf("build %s", p)
		if err := c.buildBinary(p, dst); err != nil {
			return fmt.Errorf("build crashdump for %s: %w", p, err)
		}
		binaries[p] = dst
	}

	sums := map[platform]string{}
	for _, p := range c.platforms {
		kp, err := plugin.platform(p)
		if err != nil {
			return err
		}
		files, err := kp.archiveFiles(c.root, binaries[p])
		if err != nil {
			return fmt.Errorf("krew archive for %s: %w", p, err)
		}
		dst := filepath.Join(c.out, archiveName(p))
		if err := writeArchive(dst, files); err != nil {
			return fmt.Errorf("write krew archive %s: %w", archiveName(p), err)
		}
		if sums[p], err = fileSHA256(dst); err != nil {
			return err
		}
		c.logf("archive %s %s", archiveName(p), sums[p])
	}
	rendered, err := renderKrew(src, c.version, sums)
	if err != nil {
		return fmt.Errorf("render %s: %w", krewSource, err)
	}
	if err := os.WriteFile(filepath.Join(c.out, krewManifest), rendered, 0o644); err != nil {
		return fmt.Errorf("write krew manifest: %w", err)
	}

	if err := c.packageChart(); err != nil {
		return fmt.Errorf("package chart: %w", err)
	}
	if len(c.imagePlatforms) > 0 {
		if err := c.buildImage(binaries); err != nil {
			return fmt.Errorf("build image: %w", err)
		}
	}
	if err := writeSums(c.out); err != nil {
		return fmt.Errorf("write %s: %w", sumsFile, err)
	}
	c.logf("wrote %s", c.out)
	return nil
}

// buildBinary builds cmd/crashdump for p like `make build`: static,
// -trimpath, the version stamped.
func (c config) buildBinary(p platform, dst string) error {
	cmd := exec.Command(c.goCmd, "build", "-trimpath", "-ldflags", ldflags(c.version, c.commit), "-o", dst, "./cmd/crashdump")
	cmd.Dir = c.root
	cmd.Env = append(hostGoEnv(), "CGO_ENABLED=0", "GOOS="+p.os, "GOARCH="+p.arch)
	return runCmd(cmd)
}

// hostGoEnv is the environment without a target platform: go run must
// build imgtool for this machine whatever GOOS/GOARCH the caller set.
func hostGoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "GOOS" && k != "GOARCH" && k != "CGO_ENABLED" {
			env = append(env, kv)
		}
	}
	return env
}

func runCmd(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// krewPlugin is the part of a krew Plugin manifest the release fills in
// and checks.
type krewPlugin struct {
	Spec struct {
		Version   string         `json:"version"`
		Platforms []krewPlatform `json:"platforms"`
	} `json:"spec"`
}

type krewPlatform struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	URI    string `json:"uri"`
	SHA256 string `json:"sha256"`
	Files  []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"files"`
	Bin string `json:"bin"`
}

func (k krewPlugin) platform(p platform) (krewPlatform, error) {
	var found []krewPlatform
	for _, kp := range k.Spec.Platforms {
		if kp.Selector.MatchLabels["os"] == p.os && kp.Selector.MatchLabels["arch"] == p.arch {
			found = append(found, kp)
		}
	}
	if len(found) != 1 {
		return krewPlatform{}, fmt.Errorf("%s has %d platform entries for %s, want 1", krewSource, len(found), p)
	}
	return found[0], nil
}

// archiveFile is one file of a krew archive.
type archiveFile struct {
	name string
	src  string
	mode int64
}

// archiveFiles are the files the manifest's files: entry copies out of the
// archive: the binary (bin) and repository files such as a LICENSE, each
// at the archive's top level.
func (kp krewPlatform) archiveFiles(root, binary string) ([]archiveFile, error) {
	var files []archiveFile
	for _, f := range kp.Files {
		if f.To != "." || strings.ContainsAny(f.From, "/*?[") {
			return nil, fmt.Errorf("files entry %s -> %s: the release packs plain top-level files to \".\" only", f.From, f.To)
		}
		if f.From == kp.Bin {
			files = append(files, archiveFile{name: f.From, src: binary, mode: 0o755})
			continue
		}
		src := filepath.Join(root, f.From)
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("%s declares %s in the archive: %w", krewSource, f.From, err)
		}
		files = append(files, archiveFile{name: f.From, src: src, mode: 0o644})
	}
	if !slices.ContainsFunc(files, func(f archiveFile) bool { return f.name == kp.Bin }) {
		return nil, fmt.Errorf("bin %q is not among the files", kp.Bin)
	}
	return files, nil
}

// epoch is every archive entry's mtime: the same inputs give the same
// archive, and so the same SHA-256.
var epoch = time.Unix(0, 0).UTC()

// writeArchive writes a deterministic .tar.gz of files: sorted, fixed mtime,
// owner 0:0 without names, no gzip name or time.
func writeArchive(dst string, files []archiveFile) error {
	files = slices.Clone(files)
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		f.Close()
		return err
	}
	tw := tar.NewWriter(zw)
	err = func() error {
		for _, af := range files {
			data, err := os.ReadFile(af.src)
			if err != nil {
				return err
			}
			h := &tar.Header{Name: af.name, Typeflag: tar.TypeReg, Mode: af.mode, Size: int64(len(data)),
				ModTime: epoch, Format: tar.FormatUSTAR}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
		return nil
	}()
	for _, cl := range []io.Closer{tw, zw, f} {
		if cerr := cl.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// renderKrew fills the placeholders of the krew manifest: spec.version, and
// in each platform entry the archive URL and its sha256, for every platform
// built (sums); it drops the placeholder comments and replaces the header.
// It fails when a placeholder is missing or not the placeholder value (a
// source that holds real values would hide a platform the release forgot)
// and when the manifest and the built platforms differ.
func renderKrew(src []byte, version string, sums map[platform]string) ([]byte, error) {
	var out []string
	out = append(out,
		"# krew plugin manifest for `kubectl crashdump` "+version+", rendered by `make release`",
		"# (deploy/release) from "+krewSource+". Install the plugin from a local archive:",
		"#   kubectl krew install --manifest=crashdump.yaml --archive=crashdump_linux_amd64.tar.gz")
	var (
		body, versionDone bool
		cur               platform
		rendered          = map[platform]bool{}
	)
	for i, line := range strings.Split(string(src), "\n") {
		if !body {
			// The source's header comment is about the placeholders.
			if !strings.HasPrefix(line, "apiVersion:") {
				continue
			}
			body = true
		}
		trimmed := strings.TrimSpace(line)
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		item := strings.TrimPrefix(trimmed, "- ")
		key, val, _ := strings.Cut(item, ":")
		val, _, _ = strings.Cut(val, " #")
		val = strings.Trim(strings.TrimSpace(val), `"`)
		errAt := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", i+1, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.HasPrefix(trimmed, "#") && strings.Contains(trimmed, "PLACEHOLDER"):
			continue
		case key == "version" && !versionDone:
			if val != placeholderVersion {
				return nil, errAt("spec.version is %q, not the placeholder %s", val, placeholderVersion)
			}
			line, versionDone = indent+"version: "+version, true
		case key == "selector":
			cur = platform{}
		case key == "os":
			cur.os = val
		case key == "arch":
			cur.arch = val
		case key == "uri":
			if cur.os == "" || cur.arch == "" {
				return nil, errAt("uri before the platform's os and arch labels")
			}
			if want := archiveURL(placeholderVersion, cur); val != want {
				return nil, errAt("%s uri is %q, not the placeholder %s", cur, val, want)
			}
			line = indent + "uri: " + archiveURL(version, cur)
		case key == "sha256":
			sum, ok := sums[cur]
			if !ok {
				return nil, errAt("the manifest has platform %s, which is not built", cur)
			}
			if val != placeholderSHA {
				return nil, errAt("%s sha256 is %q, not the placeholder (64 zeros)", cur, val)
			}
			if rendered[cur] {
				return nil, errAt("platform %s twice", cur)
			}
			line, rendered[cur] = indent+`sha256: "`+sum+`"`, true
		}
		out = append(out, line)
	}
	if !versionDone {
		return nil, errors.New("no spec.version placeholder")
	}
	for p := range sums {
		if !rendered[p] {
			return nil, fmt.Errorf("platform %s is built but has no entry with uri and sha256 placeholders", p)
		}
	}
	return []byte(strings.Join(out, "\n")), nil
}

// packageChart runs helm package with the chart version derived from the
// release version and the image tag as appVersion: the chart's image.tag
// defaults to appVersion, so the packaged chart runs the release image.
func (c config) packageChart() error {
	cmd := exec.Command(c.helm, "package", filepath.Join(c.root, chartDir),
		"--version", chartVersion(c.version), "--app-version", c.imageTag, "-d", c.out)
	if err := runCmd(cmd); err != nil {
		return err
	}
	want := filepath.Join(c.out, "crashdump-"+chartVersion(c.version)+".tgz")
	if _, err := os.Stat(want); err != nil {
		return fmt.Errorf("helm package wrote no %s: %w", filepath.Base(want), err)
	}
	return nil
}

// dockerfileLabel matches the Dockerfile's LABEL pairs: the release image
// carries the same ones.
var dockerfileLabel = regexp.MustCompile(`(org\.opencontainers\.image\.[a-z]+)="([^"]*)"`)

// imageLabels are the Dockerfile's OCI labels, ${VERSION} replaced.
func imageLabels(root, version string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	var labels []string
	for _, m := range dockerfileLabel.FindAllStringSubmatch(string(b), -1) {
		labels = append(labels, m[1]+"="+strings.ReplaceAll(m[2], "${VERSION}", version))
	}
	if len(labels) == 0 {
		return nil, errors.New("no org.opencontainers.image labels in the Dockerfile")
	}
	return labels, nil
}

// buildImage writes the multi-platform OCI archive with imgtool, run from
// the test/e2e module, which has go-containerregistry.
func (c config) buildImage(binaries map[platform]string) error {
	labels, err := imageLabels(c.root, c.version)
	if err != nil {
		return fmt.Errorf("image labels: %w", err)
	}
	args := []string{"run", "-trimpath", "./cmd/imgtool",
		"--name", c.image, "--tag", c.imageTag, "--path", binaryInImage, "--entrypoint", binaryInImage,
		"--cmd", imageCmd, "--user", imageUser, "--out", filepath.Join(c.out, imageArchive)}
	for _, p := range c.imagePlatforms {
		args = append(args, "--platform", p.String()+"="+binaries[p])
	}
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	// distroless/static has the CA certificates; the agent's S3 client
	// needs them for https endpoints.
	if c.caBundle != "" {
		if _, err := os.Stat(c.caBundle); err != nil {
			return fmt.Errorf("CA bundle for the image (--ca-bundle, empty for none): %w", err)
		}
		args = append(args, "--file", c.caBundle+":/etc/ssl/certs/ca-certificates.crt")
	}
	cmd := exec.Command(c.goCmd, args...)
	cmd.Dir = filepath.Join(c.root, "test", "e2e")
	cmd.Env = hostGoEnv()
	return runCmd(cmd)
}

// writeSums writes SHA256SUMS (sha256sum's format) over the files at the
// top of dir: the artifacts, not the intermediate binaries under build/.
func writeSums(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range ents { // sorted by name
		if !e.Type().IsRegular() || e.Name() == sumsFile {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, e.Name())
	}
	return os.WriteFile(filepath.Join(dir, sumsFile), []byte(b.String()), 0o644)
}
