// Command imgtool builds a single-layer container image from a static binary
// and writes it as an OCI image archive (default) or a docker-archive
// tarball, ready for `ctr -n k8s.io images import`. No registry, no Docker.
//
//	imgtool --binary ./bin/crashdump --name e2e.local/crashdump --tag dev \
//	        --path /crashdump --entrypoint /crashdump --out crashdump.tar
//
// With --platform (repeatable) instead of --binary, it writes one image per
// binary and an OCI image index of them (`make release` does, for the
// multi-arch agent image):
//
//	imgtool --platform linux/amd64=dist/linux_amd64/crashdump \
//	        --platform linux/arm64=dist/linux_arm64/crashdump \
//	        --name ghcr.io/crashdump-io/crashdump:v1.2.3 --path /crashdump --out crashdump-image.oci.tar
//
// The layer holds the binary, /etc/passwd and /etc/group (root and
// nonroot=65532), /tmp and /var/tmp (1777), mount points and any --file and
// --dir given. Timestamps are fixed, so the same inputs give the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var (
		binary       = flag.String("binary", "", "static binary to put in the image (required, unless --platform)")
		inImage      = flag.String("path", "", "path of the binary in the image (default /<binary name>)")
		ref          = flag.String("name", "", "image name, e.g. e2e.local/crashdump or e2e.local/crashdump:dev (required)")
		tag          = flag.String("tag", "", "tag (overrides a tag in --name; default latest)")
		entrypoint   = flag.String("entrypoint", "", "comma-separated entrypoint (default: the binary's path)")
		cmd          = flag.String("cmd", "", "comma-separated default arguments")
		user         = flag.String("user", "", "user[:group] the image runs as (default root)")
		workdir      = flag.String("workdir", "/", "working directory")
		format       = flag.String("format", "oci", "oci (OCI image archive) or docker (docker-archive tarball)")
		out          = flag.String("out", "", "output tarball (required)")
		arch         = flag.String("arch", runtime.GOARCH, "image architecture")
		allowDynamic = flag.Bool("allow-dynamic", false, "accept a dynamically linked binary")
		envs, files  multi
		dirs, labels multi
		platforms    multi
	)
	flag.Var(&envs, "env", "KEY=VALUE environment entry (repeatable)")
	flag.Var(&files, "file", "SRC:DST extra file (repeatable)")
	flag.Var(&dirs, "dir", "DST[:MODE] extra directory, MODE octal (repeatable)")
	flag.Var(&labels, "label", "KEY=VALUE image label (repeatable)")
	flag.Var(&platforms, "platform", "linux/ARCH=BINARY (repeatable): write a multi-platform OCI image index, one image per binary, instead of --binary/--arch")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("imgtool: ")
	if (*binary == "" && len(platforms) == 0) || *ref == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *binary != "" && len(platforms) > 0 {
		log.Fatal("--binary and --platform exclude each other")
	}
	if len(platforms) > 0 && *format != "oci" {
		log.Fatalf("--platform writes an OCI image index: --format %q is not supported with it", *format)
	}
	if *format != "oci" && *format != "docker" {
		log.Fatalf("--format %q: oci or docker", *format)
	}
	tagRef, err := parseRef(*ref, *tag)
	if err != nil {
		log.Fatal(err)
	}
	c := imageConfig{
		inImage: *inImage, entrypoint: *entrypoint, cmd: *cmd, user: *user, workdir: *workdir,
		format: *format, envs: envs, files: files, dirs: dirs, labels: labels,
	}

	if len(platforms) > 0 {
		targets, err := parsePlatforms(platforms)
		if err != nil {
			log.Fatal(err)
		}
		idx, err := buildIndex(targets, c, *allowDynamic)
		if err != nil {
			log.Fatal(err)
		}
		if err := writeOCIArchive(*out, tagRef, func(p layout.Path, opts ...layout.Option) error {
			return p.AppendIndex(idx, opts...)
		}); err != nil {
			log.Fatal(err)
		}
		d, _ := idx.Digest()
		log.Printf("wrote %s: %s %s (oci index: %s)", *out, tagRef.Name(), d, strings.Join(platforms, " "))
		return
	}

	if err := checkStatic(*binary); err != nil && !*allowDynamic {
		log.Fatal(err)
	}
	img, err := buildImage(*binary, *arch, c)
	if err != nil {
		log.Fatal(err)
	}
	switch *format {
	case "docker":
		err = tarball.WriteToFile(*out, tagRef, img)
	case "oci":
		err = writeOCIArchive(*out, tagRef, func(p layout.Path, opts ...layout.Option) error {
			return p.AppendImage(img, opts...)
		})
	}
	if err != nil {
		log.Fatal(err)
	}
	d, _ := img.Digest()
	log.Printf("wrote %s: %s %s (%s)", *out, tagRef.Name(), d, *format)
}

// imageConfig is what every image built in one run shares; only the binary
// and the architecture differ between the images of an index.
type imageConfig struct {
	inImage, entrypoint, cmd, user, workdir, format string
	envs, files, dirs, labels                       []string
}

// buildImage builds the single-layer image of binary for linux/arch.
func buildImage(binary, arch string, c imageConfig) (v1.Image, error) {
	inImage := c.inImage
	if inImage == "" {
		inImage = "/" + filepath.Base(binary)
	}
	entries := []entry{{path: inImage, src: binary, mode: 0o755}}
	for _, f := range c.files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok || !path.IsAbs(dst) {
			return nil, fmt.Errorf("--file %q: want SRC:/abs/DST", f)
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{path: dst, src: src, mode: st.Mode().Perm()})
	}
	for _, d := range c.dirs {
		dst, m, _ := strings.Cut(d, ":")
		mode := int64(0o755)
		if m != "" {
			var err error
			if mode, err = strconv.ParseInt(m, 8, 32); err != nil {
				return nil, fmt.Errorf("--dir %q: bad mode", d)
			}
		}
		entries = append(entries, entry{path: dst, dir: true, mode: fs.FileMode(mode)})
	}
	layerBytes, err := buildLayer(entries)
	if err != nil {
		return nil, err
	}
	// OCI media types for an OCI archive, Docker's for a docker-archive.
	manifestType, configType, layerType := types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
	if c.format == "docker" {
		manifestType, configType, layerType = types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(layerType))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, manifestType), configType)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	ep := []string{inImage}
	if c.entrypoint != "" {
		ep = strings.Split(c.entrypoint, ",")
	}
	cf.Config = v1.Config{
		Entrypoint: ep,
		Env:        append([]string{"PATH=/usr/local/bin:/usr/bin:/bin:/"}, c.envs...),
		User:       c.user,
		WorkingDir: c.workdir,
		Labels:     map[string]string{},
	}
	if c.cmd != "" {
		cf.Config.Cmd = strings.Split(c.cmd, ",")
	}
	for _, l := range c.labels {
		k, v, _ := strings.Cut(l, "=")
		cf.Config.Labels[k] = v
	}
	return mutate.ConfigFile(img, cf)
}

// target is one --platform: the binary of one architecture.
type target struct {
	arch, binary string
}

// parsePlatforms reads linux/ARCH=BINARY values. Only linux: the image has
// no other kernel to run on, and checkStatic reads ELF.
func parsePlatforms(vals []string) ([]target, error) {
	var ts []target
	seen := map[string]bool{}
	for _, v := range vals {
		plat, bin, ok := strings.Cut(v, "=")
		osName, arch, ok2 := strings.Cut(plat, "/")
		if !ok || !ok2 || bin == "" || arch == "" {
			return nil, fmt.Errorf("--platform %q: want linux/ARCH=BINARY", v)
		}
		if osName != "linux" {
			return nil, fmt.Errorf("--platform %q: only linux images are built", v)
		}
		if seen[arch] {
			return nil, fmt.Errorf("--platform %q: linux/%s given twice", v, arch)
		}
		seen[arch] = true
		ts = append(ts, target{arch: arch, binary: bin})
	}
	return ts, nil
}

// elfMachine is the ELF machine of each architecture a binary may be built
// for: an index whose arm64 entry holds an amd64 binary would only fail on
// the node, as "exec format error".
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
	"386": elf.EM_386, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
}

// buildIndex builds one image per target and an OCI image index of them,
// each entry carrying its platform, as `docker buildx --platform` does.
func buildIndex(ts []target, c imageConfig, allowDynamic bool) (v1.ImageIndex, error) {
	var adds []mutate.IndexAddendum
	for _, t := range ts {
		if err := checkStatic(t.binary); err != nil && !allowDynamic {
			return nil, err
		}
		if err := checkMachine(t.binary, t.arch); err != nil {
			return nil, err
		}
		img, err := buildImage(t.binary, t.arch, c)
		if err != nil {
			return nil, fmt.Errorf("image for linux/%s: %w", t.arch, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: t.arch},
		}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// checkMachine refuses a binary built for another architecture than arch.
func checkMachine(p, arch string) error {
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("%s: unknown architecture %q", p, arch)
	}
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s: not an ELF binary: %v", p, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %s, not linux/%s", p, f.Machine, arch)
	}
	return nil
}

func parseRef(ref, tag string) (name.Tag, error) {
	if tag != "" {
		r, err := name.ParseReference(ref)
		if err != nil {
			return name.Tag{}, err
		}
		return r.Context().Tag(tag), nil
	}
	return name.NewTag(ref)
}

// checkStatic refuses binaries that need a dynamic loader: the image has no libc.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s: not an ELF binary: %v", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (build it with CGO_ENABLED=0) or pass --allow-dynamic", p)
		}
	}
	return nil
}

type entry struct {
	path string
	src  string // file content from here
	data []byte // or this content
	dir  bool
	mode fs.FileMode
}

var epoch = time.Unix(0, 0).UTC()

// buildLayer writes a deterministic tar: base directories and files, the
// extra entries, with every parent directory present.
func buildLayer(extra []entry) ([]byte, error) {
	base := []entry{
		{path: "/dev", dir: true, mode: 0o755},
		{path: "/proc", dir: true, mode: 0o555},
		{path: "/sys", dir: true, mode: 0o555},
		{path: "/run", dir: true, mode: 0o755},
		{path: "/etc", dir: true, mode: 0o755},
		{path: "/tmp", dir: true, mode: 0o1777},
		{path: "/var/tmp", dir: true, mode: 0o1777},
		{path: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "/root", dir: true, mode: 0o700},
		{path: "/home/nonroot", dir: true, mode: 0o755},
	}
	all := map[string]entry{}
	for _, e := range append(base, extra...) {
		e.path = path.Clean("/" + e.path)
		for d := path.Dir(e.path); d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = entry{path: d, dir: true, mode: 0o755}
			}
		}
		all[e.path] = e
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := all[n]
		h := &tar.Header{Name: strings.TrimPrefix(n, "/"), Mode: int64(e.mode.Perm()), ModTime: epoch, Format: tar.FormatPAX}
		if e.mode&fs.ModeSticky != 0 || e.mode&0o1000 != 0 {
			h.Mode |= 0o1000
		}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			continue
		}
		data := e.data
		if e.src != "" {
			b, err := os.ReadFile(e.src)
			if err != nil {
				return nil, err
			}
			data = b
		}
		h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeOCIArchive writes an OCI image layout as a tar, with the image name in
// the annotations containerd's importer reads on the one entry add appends
// to index.json (an image, or an image index for several platforms).
func writeOCIArchive(out string, tag name.Tag, add func(p layout.Path, opts ...layout.Option) error) error {
	dir, err := os.MkdirTemp("", "imgtool-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := add(p, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          tag.Name(),
		"org.opencontainers.image.ref.name": tag.TagStr(),
	})); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname = filepath.ToSlash(rel), epoch, 0, 0, "", ""
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
