package catalog_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/filestore"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// spec is one dump to store the way the agent does: the object (through the
// uploader's real compression), its metadata, and its manifest.
type spec struct {
	id              string
	ns, pod, cont   string
	node            string
	at              time.Time
	data            []byte
	compress        bool
	noManifest      bool
	noObject        bool
	exception       string
	fileName        string
	manifestMutator func(*manifest.Manifest)
}

type fixture struct {
	t      *testing.T
	dir    string
	store  *filestore.Store
	prefix string
	up     *uploader.Uploader
	kt     *uploader.KeyTemplate
}

func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Small chunks: a dump of a few hundred KiB becomes several
	// independent zstd frames, as a large one does with the agent.
	up, err := uploader.New(uploader.Options{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	kt, err := uploader.ParseKeyTemplate(uploader.DefaultKeyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, dir: dir, store: s, prefix: prefix, up: up, kt: kt}
}

func (f *fixture) catalog() *catalog.Catalog {
	return catalog.New(f.store, catalog.Options{Prefix: f.prefix, Dir: f.store.Dir(), Concurrency: 4})
}

func randomID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// put stores s and returns its key.
func (f *fixture) put(s spec) (string, *manifest.Manifest) {
	t := f.t
	t.Helper()
	if s.id == "" {
		s.id = randomID(t)
	}
	if s.fileName == "" {
		s.fileName = "core.1"
	}
	if s.data == nil {
		s.data = []byte("dump " + s.id)
	}
	key, err := f.kt.Key(uploader.KeyFields{Namespace: s.ns, Pod: s.pod, Container: s.cont, Node: s.node, ID: s.id, FileName: s.fileName, Time: s.at})
	if err != nil {
		t.Fatal(err)
	}
	if f.prefix != "" {
		key = f.prefix + "/" + key
	}
	if s.compress {
		key += ".zst"
	}
	sum := sha256.Sum256(s.data)
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion, ID: s.id, CollectedAt: s.at, AgentVersion: "test", Node: s.node, Kind: "unknown",
		File:        manifest.File{Name: s.fileName, Path: s.fileName, Size: int64(len(s.data)), SHA256: hex.EncodeToString(sum[:])},
		Object:      manifest.Object{Store: "file", Key: key, Compression: manifest.CompressionNone},
		Correlation: manifest.Correlation{Method: manifest.MethodPath},
	}
	if s.ns != "" {
		m.Pod = &manifest.Pod{Namespace: s.ns, Name: s.pod, Container: s.cont}
	}
	if s.compress {
		m.Object.Compression = manifest.CompressionZstd
	}
	if s.exception != "" {
		m.CrashReport = &manifest.CrashReport{ExceptionType: s.exception}
	}
	ctx := context.Background()
	if !s.noObject {
		meta := map[string]string{uploader.MetaSHA256: m.File.SHA256, uploader.MetaOriginalSize: strconv.Itoa(len(s.data)),
			uploader.MetaCompression: m.Object.Compression, uploader.MetaDumpID: s.id}
		o, err := f.up.Send(ctx, f.store, key, bytes.NewReader(s.data), int64(len(s.data)), s.compress, uploader.PutOptions{Metadata: meta})
		if err != nil {
			t.Fatal(err)
		}
		m.Object.StoredSize, m.Object.URL = o.Size, o.URL
	} else {
		m.Object.ManifestOnly, m.Object.Destination = true, "rate limited"
	}
	if s.manifestMutator != nil {
		s.manifestMutator(m)
	}
	if !s.noManifest {
		b, err := manifest.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Put(ctx, key+".json", bytes.NewReader(b), int64(len(b)), uploader.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return key, m
}

func keysOf(ds []*catalog.Dump) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Namespace + "/" + d.Pod + "/" + d.Container + "@" + d.Time.Format("15:04")
	}
	return out
}

func TestParseKey(t *testing.T) {
	at := time.Date(2026, 1, 2, 10, 15, 0, 0, time.UTC)
	tests := []struct {
		name   string
		prefix string
		key    string
		ok     bool
		want   catalog.KeyInfo
	}{
		{"compressed", "", "prod/api-1/20260102T101500Z_api_3f2a9c1e_coredump.1.dmp.zst", true,
			catalog.KeyInfo{Namespace: "prod", Pod: "api-1", Time: at, Container: "api", ShortID: "3f2a9c1e", FileName: "coredump.1.dmp", Compressed: true}},
		{"raw with prefix", "dumps/eu", "dumps/eu/_unknown/_unknown/20260102T101500Z_unknown_00aa11bb_core", true,
			catalog.KeyInfo{Namespace: "_unknown", Pod: "_unknown", Time: at, Container: "unknown", ShortID: "00aa11bb", FileName: "core"}},
		{"file name with underscores", "", "ns/p/20260102T101500Z_c_deadbeef_my_core_file", true,
			catalog.KeyInfo{Namespace: "ns", Pod: "p", Time: at, Container: "c", ShortID: "deadbeef", FileName: "my_core_file"}},
		{"container made safe with underscore", "", "ns/p/20260102T101500Z_odd_name_deadbeef_core", true,
			catalog.KeyInfo{Namespace: "ns", Pod: "p", Time: at, Container: "odd_name", ShortID: "deadbeef", FileName: "core"}},
		{"file named .zst only", "", "ns/p/20260102T101500Z_c_deadbeef_.zst", true,
			catalog.KeyInfo{Namespace: "ns", Pod: "p", Time: at, Container: "c", ShortID: "deadbeef", FileName: ".zst"}},
		{"wrong prefix", "other", "prod/api-1/20260102T101500Z_api_3f2a9c1e_core", false, catalog.KeyInfo{}},
		{"too few segments", "", "prod/20260102T101500Z_api_3f2a9c1e_core", false, catalog.KeyInfo{}},
		{"too many segments", "", "a/prod/api/20260102T101500Z_api_3f2a9c1e_core", false, catalog.KeyInfo{}},
		{"bad time", "", "prod/api/20261302T101500Z_api_3f2a9c1e_core", false, catalog.KeyInfo{}},
		{"no short id", "", "prod/api/20260102T101500Z_api_core", false, catalog.KeyInfo{}},
		{"upper-case id", "", "prod/api/20260102T101500Z_api_3F2A9C1E_core", false, catalog.KeyInfo{}},
		{"no file name", "", "prod/api/20260102T101500Z_api_3f2a9c1e_", false, catalog.KeyInfo{}},
		{"probe object", "", ".crashdump-probe", false, catalog.KeyInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := catalog.ParseKey(tt.prefix, tt.key)
			if ok != tt.ok {
				t.Fatalf("ParseKey(%q, %q) ok = %v, want %v", tt.prefix, tt.key, ok, tt.ok)
			}
			if got != tt.want {
				t.Errorf("ParseKey(%q, %q) = %+v, want %+v", tt.prefix, tt.key, got, tt.want)
			}
		})
	}
}

// TestParseKeyRoundTrip: every key the agent's template renders parses
// back into the facts it was made from.
func TestParseKeyRoundTrip(t *testing.T) {
	kt, err := uploader.ParseKeyTemplate(uploader.DefaultKeyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	for _, f := range []uploader.KeyFields{
		{Namespace: "prod", Pod: "api-7d9f8c6b5-x2x4z", Container: "api", ID: "3f2a9c1e0b1c2d3e4f5a6b7c8d9e0f1a", FileName: "coredump.1.dmp"},
		{ID: "00000000ffffffff0000000011111111", FileName: "core"},
		{Namespace: "ns", Pod: "p", Container: "c", ID: "abcdef0123456789abcdef0123456789", FileName: "we ird/na_me\n.hprof"},
	} {
		f.Time = at
		key, err := kt.Key(f)
		if err != nil {
			t.Fatal(err)
		}
		ki, ok := catalog.ParseKey("", key)
		if !ok {
			t.Fatalf("ParseKey(%q) failed", key)
		}
		if ki.ShortID != f.ID[:8] || !ki.Time.Equal(at.Truncate(time.Second)) || ki.FileName != uploader.SafeSegment(f.FileName) {
			t.Errorf("ParseKey(%q) = %+v, from %+v", key, ki, f)
		}
	}
}

func TestFindAndList(t *testing.T) {
	f := newFixture(t, "eu/prod")
	base := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	f.put(spec{ns: "shop", pod: "api-1", cont: "api", node: "n1", at: at(0), exception: "System.Exception"})
	f.put(spec{ns: "shop", pod: "api-1", cont: "sidecar", node: "n2", at: at(10)})
	f.put(spec{ns: "shop", pod: "api-2", cont: "api", node: "n1", at: at(20), compress: true, data: bytes.Repeat([]byte("x"), 200<<10)})
	f.put(spec{ns: "billing", pod: "job-1", cont: "job", node: "n2", at: at(30)})
	f.put(spec{ns: "billing", pod: "job-2", cont: "job", node: "n1", at: at(40), noManifest: true})
	f.put(spec{at: at(50), node: "n1"}) // unattributed
	f.put(spec{ns: "shop", pod: "api-3", cont: "api", node: "n1", at: at(60), noObject: true})
	// Noise that is not a dump in the default layout.
	for _, k := range []string{"eu/prod/README", "eu/prod/shop/notes.txt", "eu/prod/shop/api-1/custom-layout-dump"} {
		if _, err := f.store.Put(context.Background(), k, strings.NewReader("x"), 1, uploader.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name      string
		q         catalog.Query
		want      []string
		manifests int64
	}{
		{"all, newest first", catalog.Query{}, []string{
			"shop/api-3/api@11:00", "_unknown/_unknown/unknown@10:50", "billing/job-2/job@10:40", "billing/job-1/job@10:30",
			"shop/api-2/api@10:20", "shop/api-1/sidecar@10:10", "shop/api-1/api@10:00"}, 6},
		{"namespace", catalog.Query{Namespace: "billing"}, []string{"billing/job-2/job@10:40", "billing/job-1/job@10:30"}, 1},
		{"namespace and pod", catalog.Query{Namespace: "shop", Pod: "api-1"}, []string{"shop/api-1/sidecar@10:10", "shop/api-1/api@10:00"}, 2},
		{"pod in every namespace", catalog.Query{Pod: "job-1"}, []string{"billing/job-1/job@10:30"}, 1},
		{"container", catalog.Query{Namespace: "shop", Container: "api"}, []string{"shop/api-3/api@11:00", "shop/api-2/api@10:20", "shop/api-1/api@10:00"}, 3},
		{"unattributed", catalog.Query{Namespace: "_unknown"}, []string{"_unknown/_unknown/unknown@10:50"}, 1},
		{"since (inclusive)", catalog.Query{Since: at(40)}, []string{"shop/api-3/api@11:00", "_unknown/_unknown/unknown@10:50", "billing/job-2/job@10:40"}, 2},
		{"until (inclusive)", catalog.Query{Until: at(10)}, []string{"shop/api-1/sidecar@10:10", "shop/api-1/api@10:00"}, 2},
		{"window", catalog.Query{Since: at(15), Until: at(35)}, []string{"billing/job-1/job@10:30", "shop/api-2/api@10:20"}, 2},
		{"node needs manifests", catalog.Query{Node: "n2"}, []string{"billing/job-1/job@10:30", "shop/api-1/sidecar@10:10"}, 6},
		{"limit reads only what is shown", catalog.Query{Limit: 2}, []string{"shop/api-3/api@11:00", "_unknown/_unknown/unknown@10:50"}, 2},
		{"node and limit", catalog.Query{Node: "n1", Limit: 1}, []string{"shop/api-3/api@11:00"}, 6},
		{"no such namespace", catalog.Query{Namespace: "nope"}, []string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.catalog()
			ds, err := c.List(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := keysOf(ds); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("List(%+v) =\n  %v\nwant\n  %v", tt.q, got, tt.want)
			}
			if got := c.Stats().ManifestsRead; got != tt.manifests {
				t.Errorf("read %d manifests, want %d", got, tt.manifests)
			}
		})
	}

	t.Run("states", func(t *testing.T) {
		ds, err := f.catalog().List(context.Background(), catalog.Query{})
		if err != nil {
			t.Fatal(err)
		}
		byPod := map[string]*catalog.Dump{}
		for _, d := range ds {
			byPod[d.Pod] = d
		}
		if d := byPod["job-2"]; d.HasManifest() || d.Manifest != nil || !d.HasObject() {
			t.Errorf("dump without manifest: HasManifest %v, HasObject %v", d.HasManifest(), d.HasObject())
		}
		if d := byPod["api-3"]; d.HasObject() || d.Manifest == nil || !d.Manifest.Object.ManifestOnly {
			t.Errorf("manifest-only dump: HasObject %v, manifest %+v", d.HasObject(), d.Manifest)
		}
		if d := byPod["api-2"]; !d.Compressed || d.StoredSize >= 200<<10 || d.Manifest.File.Size != 200<<10 {
			t.Errorf("compressed dump: compressed %v, stored %d, original %d", d.Compressed, d.StoredSize, d.Manifest.File.Size)
		}
	})

	t.Run("namespaces and pods", func(t *testing.T) {
		c := f.catalog()
		nss, err := c.Namespaces(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(nss, ","); got != "_unknown,billing,shop" {
			t.Errorf("Namespaces = %s", got)
		}
		pods, err := c.Pods(context.Background(), "shop")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(pods, ","); got != "api-1,api-2,api-3" {
			t.Errorf("Pods(shop) = %s", got)
		}
	})

	t.Run("skipped keys are counted", func(t *testing.T) {
		c := f.catalog()
		if _, err := c.Find(context.Background(), catalog.Query{Namespace: "shop"}); err != nil {
			t.Fatal(err)
		}
		if got := c.Stats().KeysSkipped; got != 2 {
			t.Errorf("skipped %d keys, want 2 (notes.txt, custom-layout-dump)", got)
		}
	})
}

func TestListBadManifest(t *testing.T) {
	f := newFixture(t, "")
	key, _ := f.put(spec{ns: "a", pod: "p", cont: "c", at: time.Now()})
	if err := os.WriteFile(filepath.Join(f.dir, key+".json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := f.catalog().List(context.Background(), catalog.Query{})
	if err != nil {
		t.Fatalf("a bad manifest must not fail the listing: %v", err)
	}
	if len(ds) != 1 || ds[0].Manifest != nil || ds[0].ManifestErr == nil || !strings.Contains(ds[0].ManifestErr.Error(), key) {
		t.Fatalf("got %d dumps, manifest %v, error %v; want the dump with an error naming %s", len(ds), ds[0].Manifest, ds[0].ManifestErr, key)
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t, "pfx")
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	k1, m1 := f.put(spec{id: "abcd1234" + strings.Repeat("0", 24), ns: "prod", pod: "api-1", cont: "api", at: now})
	k2, _ := f.put(spec{id: "abcd1234" + strings.Repeat("f", 24), ns: "prod", pod: "api-2", cont: "api", at: now.Add(time.Second)})
	k3, _ := f.put(spec{id: "abcd9999" + strings.Repeat("1", 24), ns: "staging", pod: "web", cont: "web", at: now})
	k4, _ := f.put(spec{id: "12345678" + strings.Repeat("2", 24), ns: "staging", pod: "web", cont: "web", at: now, noManifest: true})
	rel := strings.TrimPrefix(k1, "pfx/")

	tests := []struct {
		name    string
		ref     string
		scope   catalog.Query
		wantKey string
		// wantErr: "ambiguous", "notfound" or a substring
		wantErr   string
		manifests int64
	}{
		{"unique short prefix", "abcd9", catalog.Query{}, k3, "", 1},
		{"short id of a dump without manifest", "12345678", catalog.Query{}, k4, "", 0},
		{"shared short id is ambiguous", "abcd1234", catalog.Query{}, "", "ambiguous", 0},
		{"4 digits ambiguous across namespaces", "abcd", catalog.Query{}, "", "ambiguous", 0},
		{"scope by namespace", "abcd", catalog.Query{Namespace: "staging"}, k3, "", 1},
		{"scope by pod", "abcd1234", catalog.Query{Namespace: "prod", Pod: "api-2"}, k2, "", 1},
		{"longer prefix reads manifests", "abcd12340", catalog.Query{}, k1, "", 2},
		{"full id", m1.ID, catalog.Query{}, k1, "", 2},
		{"upper case", "ABCD9", catalog.Query{}, k3, "", 1},
		{"key", k1, catalog.Query{}, k1, "", 1},
		{"manifest key", k1 + ".json", catalog.Query{}, k1, "", 1},
		{"key without the store prefix", rel, catalog.Query{}, k1, "", 1},
		{"file URL", "file://" + f.store.Dir() + "/" + k3, catalog.Query{}, k3, "", 1},
		{"file URL elsewhere", "file:///elsewhere/" + k3, catalog.Query{}, "", "not in this store", 0},
		{"s3 URL on a file store", "s3://bucket/" + k3, catalog.Query{}, "", "not in this store", 0},
		{"no match", "ffff", catalog.Query{}, "", "notfound", 0},
		{"no match in scope", "abcd9", catalog.Query{Namespace: "prod"}, "", "notfound", 0},
		{"missing key", "pfx/prod/api-1/20260506T070809Z_api_00000000_core.1", catalog.Query{}, "", "notfound", 0},
		{"too short", "abc", catalog.Query{}, "", "at least 4 hex digits", 0},
		{"not hex", "zzzzzz", catalog.Query{}, "", "neither a dump ID", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.catalog()
			d, err := c.Resolve(context.Background(), tt.ref, tt.scope)
			var amb *catalog.AmbiguousError
			var nf *catalog.NotFoundError
			switch {
			case tt.wantErr == "ambiguous":
				if !errors.As(err, &amb) || len(amb.Candidates) < 2 {
					t.Fatalf("Resolve(%q) = %v, %v; want an ambiguity", tt.ref, d, err)
				}
				for _, c := range amb.Candidates {
					if !strings.Contains(err.Error(), c.Key) {
						t.Errorf("ambiguity error does not list %s:\n%v", c.Key, err)
					}
				}
			case tt.wantErr == "notfound":
				if !errors.As(err, &nf) {
					t.Fatalf("Resolve(%q) = %v, %v; want not found", tt.ref, d, err)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve(%q) error = %v, want one containing %q", tt.ref, err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatalf("Resolve(%q): %v", tt.ref, err)
				}
				if d.Key != tt.wantKey {
					t.Errorf("Resolve(%q) = %s, want %s", tt.ref, d.Key, tt.wantKey)
				}
				if d.HasManifest() && d.Manifest == nil {
					t.Errorf("Resolve(%q) did not read the manifest", tt.ref)
				}
			}
			if got := c.Stats().ManifestsRead; got != tt.manifests {
				t.Errorf("read %d manifests, want %d", got, tt.manifests)
			}
		})
	}
}

func TestFetch(t *testing.T) {
	f := newFixture(t, "")
	now := time.Now().UTC()
	random := make([]byte, 300<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	// Compressible but not trivial: 300 KiB in 64 KiB frames.
	var text bytes.Buffer
	for i := 0; text.Len() < 300<<10; i++ {
		fmt.Fprintf(&text, "frame %d of a dump that compresses well\n", i)
	}
	tests := []struct {
		name       string
		s          spec
		corrupt    func([]byte) []byte
		wantErr    string
		integrity  bool
		wantSource string
	}{
		{name: "raw", s: spec{data: random}, wantSource: "manifest"},
		{name: "zstd, several frames", s: spec{data: text.Bytes(), compress: true}, wantSource: "manifest"},
		{name: "no manifest: metadata", s: spec{data: text.Bytes(), compress: true, noManifest: true}, wantSource: "object metadata"},
		{name: "raw, one byte flipped", s: spec{data: random}, corrupt: flip, integrity: true, wantErr: "SHA-256 mismatch"},
		{name: "zstd, one byte flipped", s: spec{data: text.Bytes(), compress: true}, corrupt: flip, integrity: true, wantErr: "integrity check"},
		{name: "raw, truncated", s: spec{data: random}, corrupt: func(b []byte) []byte { return b[:len(b)/2] }, integrity: true, wantErr: "size is"},
		{name: "zstd, truncated", s: spec{data: text.Bytes(), compress: true}, corrupt: func(b []byte) []byte { return b[:len(b)-100] }, integrity: true, wantErr: "integrity check"},
		{name: "manifest only", s: spec{noObject: true}, wantErr: "not uploaded"},
		{name: "wrong sha in manifest", s: spec{data: random, manifestMutator: func(m *manifest.Manifest) { m.File.SHA256 = strings.Repeat("0", 64) }}, integrity: true, wantErr: "SHA-256 mismatch"},
		{name: "unknown compression", s: spec{data: random, manifestMutator: func(m *manifest.Manifest) { m.Object.Compression = "lz4" }}, wantErr: "unknown compression"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.ns, tt.s.pod, tt.s.cont, tt.s.at = "ns", fmt.Sprintf("pod-%d", i), "c", now
			key, _ := f.put(tt.s)
			if tt.corrupt != nil {
				p := filepath.Join(f.dir, key)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, tt.corrupt(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c := f.catalog()
			d, err := c.Resolve(context.Background(), key, catalog.Query{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			var progressed int64
			got, err := c.Fetch(context.Background(), d, &out, func(n int64) { progressed = n })
			var ie *catalog.IntegrityError
			if errors.As(err, &ie) != tt.integrity {
				t.Errorf("Fetch error %v: integrity error %v, want %v", err, errors.As(err, &ie), tt.integrity)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), tt.s.data) {
				t.Fatalf("fetched %d bytes differ from the %d stored", out.Len(), len(tt.s.data))
			}
			if got.Expected.Source != tt.wantSource || got.Size != int64(len(tt.s.data)) || progressed != got.StoredSize || got.StoredSize != d.StoredSize {
				t.Errorf("Fetch = %+v, progress %d, stored %d; want source %q", got, progressed, d.StoredSize, tt.wantSource)
			}
		})
	}
}

func flip(b []byte) []byte {
	b[len(b)/2] ^= 0x40
	return b
}

// TestResolveKeyPrefixIsNamespace: with the store prefix "prod" and a
// namespace "prod" (the docs' own s3.prefix=prod setup), a key given
// without the prefix starts with "prod/" too, and must still resolve
// (issue 19 item 4). A full key resolves as before.
func TestResolveKeyPrefixIsNamespace(t *testing.T) {
	f := newFixture(t, "prod")
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	k, _ := f.put(spec{id: "abcd1234" + strings.Repeat("0", 24), ns: "prod", pod: "api-1", cont: "api", at: now})
	rel := strings.TrimPrefix(k, "prod/")
	if !strings.HasPrefix(rel, "prod/") {
		t.Fatalf("fixture key %s: want prod/prod/…", k)
	}
	for _, ref := range []string{k, rel, rel + ".json"} {
		d, err := f.catalog().Resolve(context.Background(), ref, catalog.Query{})
		if err != nil {
			t.Errorf("Resolve(%q): %v", ref, err)
			continue
		}
		if d.Key != k {
			t.Errorf("Resolve(%q) = %s, want %s", ref, d.Key, k)
		}
	}
}
