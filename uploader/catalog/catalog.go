// Package catalog finds and reads dumps in a store: the read side of
// crashdump's data flow, used by the retrieval CLI (ls, describe, get and
// shell completion). The agent writes each dump under the default key layout
// <prefix>/<namespace>/<pod>/<UTC time>_<container>_<short id>_<file>[.zst]
// with its manifest at <key>.json; the catalog turns that layout back into
// answers:
//
//   - namespace and pod filters become key prefixes, so a query lists only
//     the part of the bucket it needs, however large the bucket is;
//   - time, container and short ID come from the key itself, so those
//     filters are applied before anything is read;
//   - manifests are read only for the dumps that survive those filters,
//     concurrently with a bound;
//   - Fetch streams a dump back, decompresses it and verifies it against
//     the SHA-256 the agent recorded, so what a user opens is what crashed.
//
// Stores written with a custom --key-template are not understood by the
// listing (keys that do not parse are skipped and counted); a dump there can
// still be described and fetched by its full key.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Store is what the catalog needs from object storage: listing by prefix
// (with an optional delimiter) and streaming reads. *s3store.Store and
// *filestore.Store implement it. Head is deliberately not needed: the file
// store's Head reads the whole object to checksum it, and a listing with the
// key as prefix answers "does it exist and how big is it" for the dump and
// its manifest in one request. Implementations must be safe for concurrent
// use.
type Store interface {
	// List calls page with every page of keys under prefix in key order;
	// with delimiter "/" deeper keys are rolled up into common prefixes
	// ending in "/". An error returned by page stops the listing and is
	// returned.
	List(ctx context.Context, prefix, delimiter string, page func(objects []uploader.Object, prefixes []string) error) error
	// Get opens an object for streaming; a missing key wraps
	// uploader.ErrNotExist.
	Get(ctx context.Context, key string) (io.ReadCloser, uploader.Object, error)
}

// Defaults of Options.
const (
	DefaultConcurrency     = 16
	DefaultListConcurrency = 8
	// DefaultMaxManifestSize bounds how much of an object is read as a
	// manifest (real ones are a few KiB; a crash report's frames are
	// bounded by the agent).
	DefaultMaxManifestSize = 4 << 20
	// MinIDLength is the shortest ID prefix Resolve accepts: shorter ones
	// match too many dumps to be useful.
	MinIDLength = 4
)

// Options configure a Catalog.
type Options struct {
	// Prefix is the key prefix within the bucket (the path of
	// s3://bucket/prefix), without leading or trailing '/'.
	Prefix string
	// Bucket and Dir let Resolve accept object URLs (s3://bucket/key,
	// file:///dir/key) as printed in manifests and Kubernetes Events.
	Bucket string
	Dir    string
	// Concurrency bounds manifest reads in flight (default 16).
	Concurrency int
	// ListConcurrency bounds namespaces listed at the same time for
	// all-namespace queries (default 8).
	ListConcurrency int
	// MaxManifestSize bounds a manifest read (default 4 MiB).
	MaxManifestSize int64
}

// Catalog answers questions about the dumps in one store. Safe for
// concurrent use.
type Catalog struct {
	store Store
	opts  Options
	base  string // Prefix + "/", or "" for none

	listRequests  atomic.Int64
	keysListed    atomic.Int64
	keysSkipped   atomic.Int64
	manifestsRead atomic.Int64
}

// New returns a Catalog over store.
func New(store Store, opts Options) *Catalog {
	opts.Prefix = strings.Trim(opts.Prefix, "/")
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.ListConcurrency <= 0 {
		opts.ListConcurrency = DefaultListConcurrency
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	c := &Catalog{store: store, opts: opts}
	if opts.Prefix != "" {
		c.base = opts.Prefix + "/"
	}
	return c
}

// Stats count the work the catalog did, for --verbose output and the
// benchmark (which checks that a namespace query reads only that
// namespace's manifests).
type Stats struct {
	// ListRequests is the number of listing pages requested.
	ListRequests int64
	// KeysListed is the number of keys those pages held.
	KeysListed int64
	// KeysSkipped counts listed keys that are not in the default layout.
	KeysSkipped int64
	// ManifestsRead is the number of manifests fetched.
	ManifestsRead int64
}

// Stats returns the counters so far.
func (c *Catalog) Stats() Stats {
	return Stats{
		ListRequests:  c.listRequests.Load(),
		KeysListed:    c.keysListed.Load(),
		KeysSkipped:   c.keysSkipped.Load(),
		ManifestsRead: c.manifestsRead.Load(),
	}
}

// Dump is one dump in the store: what its key says, what the listing says,
// and its manifest once read.
type Dump struct {
	// Key is the dump object's key, prefix included (also for dumps whose
	// object is missing: where it would be).
	Key string
	KeyInfo
	// Parsed is false for a key outside the default layout (found by its
	// full key); KeyInfo is then empty.
	Parsed bool
	// StoredSize is the dump object's size, -1 when there is no object
	// (a manifest-only entry, or a dump deleted by a lifecycle rule).
	StoredSize int64
	// ManifestSize is the manifest's size, -1 when there is none yet (the
	// agent writes it right after the dump is verified).
	ManifestSize int64
	// Manifest is set by ReadManifests (nil when missing or unreadable;
	// ManifestErr says why for an unreadable one).
	Manifest    *manifest.Manifest
	ManifestErr error
}

// ManifestKey is the key of the dump's manifest.
func (d *Dump) ManifestKey() string { return d.Key + ".json" }

// HasObject reports whether the dump object itself is stored.
func (d *Dump) HasObject() bool { return d.StoredSize >= 0 }

// HasManifest reports whether a manifest is stored beside the dump.
func (d *Dump) HasManifest() bool { return d.ManifestSize >= 0 }

// ID is the dump's full ID when its manifest was read, else the short ID
// from its key.
func (d *Dump) ID() string {
	if d.Manifest != nil && d.Manifest.ID != "" {
		return d.Manifest.ID
	}
	return d.ShortID
}

// Query selects dumps. Zero fields match everything.
type Query struct {
	// Namespace and Pod are key segments ("_unknown" for dumps that were
	// not attributed). Pod without Namespace searches every namespace.
	Namespace string
	Pod       string
	// Container is the container key segment ("unknown" when not known).
	Container string
	// Node needs manifests: it is applied after they are read.
	Node string
	// Since and Until bound the collection time in the key (UTC, to the
	// second), inclusive.
	Since, Until time.Time
	// Limit keeps the newest Limit dumps (0: all).
	Limit int
}

// listPrefix returns the narrowest key prefix that holds every dump q can
// match, and whether it is one namespace (false: all namespaces).
func (c *Catalog) listPrefix(q Query) (string, bool) {
	switch {
	case q.Namespace != "" && q.Pod != "":
		return c.base + q.Namespace + "/" + q.Pod + "/", true
	case q.Namespace != "":
		return c.base + q.Namespace + "/", true
	}
	return c.base, false
}

// matchKey applies the filters that need only the key.
func (q Query) matchKey(d *Dump) bool {
	if !d.Parsed {
		return false
	}
	if q.Namespace != "" && d.Namespace != q.Namespace {
		return false
	}
	if q.Pod != "" && d.Pod != q.Pod {
		return false
	}
	if q.Container != "" && d.Container != q.Container {
		return false
	}
	if !q.Since.IsZero() && d.Time.Before(q.Since.Truncate(time.Second)) {
		return false
	}
	if !q.Until.IsZero() && d.Time.After(q.Until) {
		return false
	}
	return true
}

// Find returns the dumps that match q's key-level filters (everything but
// Node and Limit), newest first, without reading any manifest. A namespace
// (and pod) query lists only that part of the bucket; an all-namespace
// query lists the namespaces, then each of them concurrently.
func (c *Catalog) Find(ctx context.Context, q Query) ([]*Dump, error) {
	prefix, one := c.listPrefix(q)
	var all []*Dump
	if one {
		ds, err := c.scan(ctx, prefix)
		if err != nil {
			return nil, err
		}
		all = ds
	} else {
		nss, err := c.Namespaces(ctx)
		if err != nil {
			return nil, err
		}
		parts := make([][]*Dump, len(nss))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.opts.ListConcurrency)
		for i, ns := range nss {
			g.Go(func() error {
				ds, err := c.scan(gctx, c.base+ns+"/")
				parts[i] = ds
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for _, p := range parts {
			all = append(all, p...)
		}
	}
	out := all[:0]
	for _, d := range all {
		if q.matchKey(d) {
			out = append(out, d)
		}
	}
	sortNewestFirst(out)
	return out, nil
}

func sortNewestFirst(ds []*Dump) {
	sort.SliceStable(ds, func(i, j int) bool {
		if !ds[i].Time.Equal(ds[j].Time) {
			return ds[i].Time.After(ds[j].Time)
		}
		return ds[i].Key > ds[j].Key
	})
}

// List returns the dumps matching q, newest first, with their manifests
// read: Find, then the manifests of the dumps it kept (only those), then
// the Node filter and the Limit. With a Limit and no Node filter, only the
// newest Limit manifests are read.
func (c *Catalog) List(ctx context.Context, q Query) ([]*Dump, error) {
	ds, err := c.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	if q.Node == "" {
		if q.Limit > 0 && len(ds) > q.Limit {
			ds = ds[:q.Limit]
		}
		if err := c.ReadManifests(ctx, ds); err != nil {
			return nil, err
		}
		return ds, nil
	}
	// The node is only in the manifest: read in batches, newest first,
	// until Limit dumps from that node are found.
	batch := len(ds)
	if q.Limit > 0 {
		batch = max(q.Limit, 4*c.opts.Concurrency)
	}
	var out []*Dump
	for i := 0; i < len(ds) && (q.Limit == 0 || len(out) < q.Limit); i += batch {
		b := ds[i:min(i+batch, len(ds))]
		if err := c.ReadManifests(ctx, b); err != nil {
			return nil, err
		}
		for _, d := range b {
			if d.Manifest != nil && d.Manifest.Node == q.Node {
				out = append(out, d)
			}
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// scan lists every key under prefix and pairs dump objects with their
// manifests. Keys outside the default layout are skipped.
func (c *Catalog) scan(ctx context.Context, prefix string) ([]*Dump, error) {
	sizes := map[string]int64{}
	var keys []string
	err := c.store.List(ctx, prefix, "", func(objs []uploader.Object, _ []string) error {
		c.listRequests.Add(1)
		c.keysListed.Add(int64(len(objs)))
		for _, o := range objs {
			sizes[o.Key] = o.Size
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*Dump
	for _, k := range keys {
		if stem, ok := strings.CutSuffix(k, manifest.CrashReportSuffix); ok {
			_, obj := sizes[stem]
			_, man := sizes[stem+".json"]
			if obj || man {
				continue // a dump's crash report, named in its manifest
			}
		}
		var d *Dump
		if ms, ok := sizes[k+".json"]; ok {
			// k has a manifest beside it: k is a dump.
			d = &Dump{Key: k, StoredSize: sizes[k], ManifestSize: ms}
		} else if stem, ok := strings.CutSuffix(k, ".json"); ok {
			if _, hasDump := sizes[stem]; hasDump {
				continue // the manifest of stem, handled with stem
			}
			// A manifest without its dump: a manifest-only entry (or
			// the object was removed).
			d = &Dump{Key: stem, StoredSize: -1, ManifestSize: sizes[k]}
		} else {
			// A dump whose manifest is not written yet.
			d = &Dump{Key: k, StoredSize: sizes[k], ManifestSize: -1}
		}
		ki, ok := ParseKey(c.opts.Prefix, d.Key)
		if !ok {
			c.keysSkipped.Add(1)
			continue
		}
		d.KeyInfo, d.Parsed = ki, true
		out = append(out, d)
	}
	return out, nil
}

// errStop ends a listing early.
var errStop = errors.New("stop listing")

// Empty reports whether the store holds no object at all under the prefix:
// "no dumps" then more likely means a wrong --store or prefix than a quiet
// cluster. One listing request.
func (c *Catalog) Empty(ctx context.Context) (bool, error) {
	empty := true
	err := c.store.List(ctx, c.base, "", func(objs []uploader.Object, prefixes []string) error {
		c.listRequests.Add(1)
		if len(objs) > 0 || len(prefixes) > 0 {
			empty = false
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	return empty, nil
}

// ReadManifests reads the manifests of ds that have one, at most
// Concurrency at a time, setting Manifest or ManifestErr on each. A manifest
// that cannot be parsed (or vanished) is that dump's problem, recorded in
// ManifestErr; a store that cannot be read fails the whole call.
func (c *Catalog) ReadManifests(ctx context.Context, ds []*Dump) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for _, d := range ds {
		if !d.HasManifest() || d.Manifest != nil {
			continue
		}
		g.Go(func() error {
			m, err := c.readManifest(gctx, d.ManifestKey())
			switch {
			case err == nil:
				d.Manifest, d.ManifestErr = m, nil
			case errors.Is(err, errBadManifest) || errors.Is(err, uploader.ErrNotExist):
				d.ManifestErr = err
			default:
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

var errBadManifest = errors.New("bad manifest")

func (c *Catalog) readManifest(ctx context.Context, key string) (*manifest.Manifest, error) {
	body, _, err := c.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer body.Close()
	c.manifestsRead.Add(1)
	data, err := io.ReadAll(io.LimitReader(body, c.opts.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	if int64(len(data)) > c.opts.MaxManifestSize {
		return nil, fmt.Errorf("read manifest %s: larger than %d bytes: %w", key, c.opts.MaxManifestSize, errBadManifest)
	}
	m, err := manifest.Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", key, errBadManifest, err)
	}
	return m, nil
}

// Namespaces lists the namespace segments that hold dumps ("_unknown"
// included), sorted: one delimiter listing of the prefix.
func (c *Catalog) Namespaces(ctx context.Context) ([]string, error) {
	return c.children(ctx, c.base)
}

// Pods lists the pod segments under namespace ns, sorted.
func (c *Catalog) Pods(ctx context.Context, ns string) ([]string, error) {
	if ns == "" || strings.Contains(ns, "/") {
		return nil, fmt.Errorf("list pods: bad namespace %q", ns)
	}
	return c.children(ctx, c.base+ns+"/")
}

func (c *Catalog) children(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := c.store.List(ctx, prefix, "/", func(objs []uploader.Object, prefixes []string) error {
		c.listRequests.Add(1)
		c.keysListed.Add(int64(len(objs)))
		for _, p := range prefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/")
			if name != "" && uploader.SafeSegment(name) == name {
				out = append(out, name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// NotFoundError means no dump matches a reference.
type NotFoundError struct {
	Ref string
	// Scope describes where it was looked for ("namespace prod").
	Scope string
}

func (e *NotFoundError) Error() string {
	where := ""
	if e.Scope != "" {
		where = " in " + e.Scope
	}
	return fmt.Sprintf("no dump matches %q%s", e.Ref, where)
}

// AmbiguousError means an abbreviated ID matches more than one dump.
type AmbiguousError struct {
	Ref        string
	Candidates []*Dump
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ID %q is ambiguous: it matches %d dumps; use more characters of the ID, or the key:", e.Ref, len(e.Candidates))
	const show = 10
	for i, d := range e.Candidates {
		if i == show {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Candidates)-show)
			break
		}
		fmt.Fprintf(&b, "\n  %s  %s  %s/%s  %s", d.ID(), d.Time.UTC().Format(time.RFC3339), d.Namespace, d.Pod, d.Key)
	}
	return b.String()
}

// Resolve finds the dump ref names and reads its manifest (when it has
// one). ref is one of:
//   - an ID or an ID prefix of at least MinIDLength hex digits: up to 8
//     digits match the short ID in keys (no manifest read), longer ones
//     are then checked against the full ID in the candidates' manifests;
//     the search covers scope (its Namespace and Pod; the rest is ignored);
//   - a key, with or without the store prefix, or a manifest key;
//   - an object URL, s3://bucket/key or file:///dir/key.
//
// No match is a *NotFoundError, more than one an *AmbiguousError.
func (c *Catalog) Resolve(ctx context.Context, ref string, scope Query) (*Dump, error) {
	ref = strings.TrimSpace(ref)
	key, isKey, err := c.refKey(ref)
	if err != nil {
		return nil, err
	}
	if isKey {
		return c.byKey(ctx, ref, key)
	}
	return c.byID(ctx, ref, Query{Namespace: scope.Namespace, Pod: scope.Pod})
}

// refKey turns an object URL or key into a key; isKey is false for IDs.
func (c *Catalog) refKey(ref string) (key string, isKey bool, err error) {
	switch {
	case strings.HasPrefix(ref, "s3://"):
		u, err := url.Parse(ref)
		if err != nil {
			return "", false, fmt.Errorf("parse %q: %w", ref, err)
		}
		if c.opts.Bucket == "" || u.Host != c.opts.Bucket {
			return "", false, fmt.Errorf("%s is not in this store (bucket %q): pass --store s3://%s", ref, c.opts.Bucket, u.Host)
		}
		return strings.TrimPrefix(u.Path, "/"), true, nil
	case strings.HasPrefix(ref, "file://"):
		u, err := url.Parse(ref)
		if err != nil {
			return "", false, fmt.Errorf("parse %q: %w", ref, err)
		}
		dir := strings.TrimSuffix(c.opts.Dir, "/") + "/"
		rel, ok := strings.CutPrefix(path.Clean(u.Path), dir)
		if c.opts.Dir == "" || !ok {
			return "", false, fmt.Errorf("%s is not in this store (directory %q)", ref, c.opts.Dir)
		}
		return rel, true, nil
	case strings.Contains(ref, "/"):
		return strings.TrimPrefix(ref, "/"), true, nil
	}
	return "", false, nil
}

// byKey finds a dump by its key (or its manifest's key), trying the key
// as given and then under the store prefix.
func (c *Catalog) byKey(ctx context.Context, ref, key string) (*Dump, error) {
	// Under the prefix too even when the key starts with it: with the
	// prefix "prod/" and a namespace "prod", a key without the prefix
	// starts with "prod/" as well.
	keys := []string{key}
	if c.base != "" {
		keys = append(keys, c.base+key)
	}
	for _, k := range keys {
		tries := []string{k}
		if stem, ok := strings.CutSuffix(k, ".json"); ok {
			tries = []string{stem, k} // a manifest key names its dump
		}
		for _, t := range tries {
			d, err := c.exact(ctx, t)
			if err != nil {
				return nil, err
			}
			if d == nil {
				continue
			}
			if err := c.ReadManifests(ctx, []*Dump{d}); err != nil {
				return nil, err
			}
			return d, nil
		}
	}
	return nil, &NotFoundError{Ref: ref}
}

// exact looks key and key.json up with one listing; nil when neither
// exists.
func (c *Catalog) exact(ctx context.Context, key string) (*Dump, error) {
	if uploader.CheckKey(key) != nil {
		return nil, nil
	}
	d := &Dump{Key: key, StoredSize: -1, ManifestSize: -1}
	err := c.store.List(ctx, key, "", func(objs []uploader.Object, _ []string) error {
		c.listRequests.Add(1)
		c.keysListed.Add(int64(len(objs)))
		for _, o := range objs {
			switch o.Key {
			case key:
				d.StoredSize = o.Size
			case key + ".json":
				d.ManifestSize = o.Size
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !d.HasObject() && !d.HasManifest() {
		return nil, nil
	}
	if ki, ok := ParseKey(c.opts.Prefix, key); ok {
		d.KeyInfo, d.Parsed = ki, true
	}
	return d, nil
}

func (c *Catalog) byID(ctx context.Context, ref string, q Query) (*Dump, error) {
	id := strings.ToLower(ref)
	if len(id) < MinIDLength || !isHex(id) {
		return nil, fmt.Errorf("%q is neither a dump ID (at least %d hex digits), a key nor an object URL", ref, MinIDLength)
	}
	short := id[:min(len(id), shortIDLen)]
	ds, err := c.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	var cands []*Dump
	for _, d := range ds {
		if strings.HasPrefix(d.ShortID, short) {
			cands = append(cands, d)
		}
	}
	if len(id) > shortIDLen && len(cands) > 0 {
		if err := c.ReadManifests(ctx, cands); err != nil {
			return nil, err
		}
		full := cands[:0]
		for _, d := range cands {
			if d.Manifest != nil && strings.HasPrefix(d.Manifest.ID, id) {
				full = append(full, d)
			}
		}
		cands = full
	}
	switch len(cands) {
	case 0:
		return nil, &NotFoundError{Ref: ref, Scope: q.scope()}
	case 1:
		if err := c.ReadManifests(ctx, cands); err != nil {
			return nil, err
		}
		return cands[0], nil
	}
	return nil, &AmbiguousError{Ref: ref, Candidates: cands}
}

func (q Query) scope() string {
	switch {
	case q.Namespace != "" && q.Pod != "":
		return "pod " + q.Namespace + "/" + q.Pod
	case q.Namespace != "":
		return "namespace " + q.Namespace
	case q.Pod != "":
		return "pods named " + q.Pod
	}
	return ""
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
