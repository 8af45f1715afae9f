// Command release builds everything a crashdump release ships into one
// directory (`make release` runs it into dist/), without Docker:
//
//   - crashdump_<os>_<arch>.tar.gz: the krew plugin archives, one per CLI
//     platform, holding the static binary (built like `make build`) and the
//     other files deploy/krew/crashdump.yaml declares;
//   - crashdump.yaml: that krew manifest with the version, each archive's
//     release URL and its real SHA-256;
//   - crashdump-<chart version>.tgz: the Helm chart (`helm package`), its
//     appVersion the image tag, so the chart's default image is the one
//     below;
//   - crashdump-image.oci.tar: the agent image for the Linux platforms as an
//     OCI image index in an OCI archive (test/e2e/cmd/imgtool, the tool the
//     end-to-end tests build their images with);
//   - SHA256SUMS over all of them (sha256sum -c reads it).
//
// It lives beside what it packages (deploy/) as a build-time program, not
// under cmd/: cmd/crashdump is the product and this is not shipped. The
// image is built by imgtool in the test/e2e module (`go run` there), which
// keeps go-containerregistry out of the product's go.mod.
//
//	go run ./deploy/release --version v1.2.3 --out dist
package main

import (
	"flag"
	"log"
	"os"
	"strings"
)

func main() {
	c := config{}
	var platforms, imagePlatforms string
	flag.StringVar(&c.version, "version", "", "release version, semver with a leading v (make -s print-version) (required)")
	flag.StringVar(&c.commit, "commit", "unknown", "commit stamped into the binaries (make: git rev-parse HEAD)")
	flag.StringVar(&c.out, "out", "dist", "output directory; must not exist or be empty")
	flag.StringVar(&c.root, "root", ".", "repository root")
	flag.StringVar(&platforms, "platforms", strings.Join(defaultPlatforms, ","), "comma-separated OS/ARCH of the CLI archives")
	flag.StringVar(&imagePlatforms, "image-platforms", strings.Join(defaultImagePlatforms, ","), "comma-separated linux/ARCH of the image")
	flag.StringVar(&c.image, "image", "ghcr.io/crashdump-io/crashdump", "image repository named in the OCI archive")
	flag.StringVar(&c.imageTag, "image-tag", "", "image tag (default: the version with + replaced by -, as tags cannot hold +)")
	flag.StringVar(&c.caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates copied into the image, for TLS to S3 (empty: none)")
	flag.StringVar(&c.helm, "helm", "bin/helm", "helm binary")
	flag.StringVar(&c.goCmd, "go", "go", "go command")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("release: ")
	if c.version == "" {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if c.platforms, err = parsePlatforms(platforms); err != nil {
		log.Fatal(err)
	}
	if c.imagePlatforms, err = parsePlatforms(imagePlatforms); err != nil {
		log.Fatal(err)
	}
	c.logf = log.Printf
	if err := run(c); err != nil {
		log.Fatal(err)
	}
}
