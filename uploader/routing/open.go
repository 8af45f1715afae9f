package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/s3store"
	"github.com/crashdump-io/crashdump/uploader/stores"
)

// Destinations are a routing config's open stores. Safe for concurrent use.
type Destinations struct {
	cfg    *Config
	stores map[string]uploader.Store
	pings  map[string]func(context.Context) error
}

// OpenOptions say how destinations are built.
type OpenOptions struct {
	// CredentialsDir holds one directory per credentialsSecret (the
	// Secrets mounted by the Helm chart).
	CredentialsDir string
	// Wrap adds per-destination features (metrics labelled with the
	// destination name, the node-wide bandwidth limit).
	Wrap func(s uploader.Store, name string) uploader.Store
	Log  *slog.Logger
}

// Open opens every destination of cfg. def is the default destination (the
// agent's --store), already wrapped; base carries the agent's S3 settings,
// which destinations inherit unless they set their own.
func Open(ctx context.Context, cfg *Config, def uploader.Store, base s3store.Config, o OpenOptions) (*Destinations, error) {
	d := &Destinations{cfg: cfg, stores: map[string]uploader.Store{DefaultDestination: def}, pings: map[string]func(context.Context) error{}}
	for _, dest := range cfg.Destinations {
		sc := base
		if dest.Endpoint != "" {
			sc.Endpoint = dest.Endpoint
		}
		if dest.Region != "" {
			sc.Region = dest.Region
		}
		if dest.SSE != "" {
			sc.SSE, sc.SSEKMSKeyID = dest.SSE, dest.SSEKMSKeyID
		}
		sc.RoleARN = dest.RoleARN
		if dest.CredentialsSecret != "" {
			creds, err := secretCredentials(filepath.Join(o.CredentialsDir, dest.CredentialsSecret))
			if err != nil {
				return nil, fmt.Errorf("destination %s (line %d): %w", dest.Name, dest.Line, err)
			}
			sc.Credentials = creds
		}
		opened, err := stores.Open(ctx, dest.Store, sc, o.Log)
		if err != nil {
			return nil, fmt.Errorf("destination %s (line %d): %w", dest.Name, dest.Line, err)
		}
		s := opened.Store
		if o.Wrap != nil {
			s = o.Wrap(s, dest.Name)
		}
		d.stores[dest.Name] = s
		d.pings[dest.Name] = opened.Ping
	}
	return d, nil
}

// Route implements the collector's Destinations.
func (d *Destinations) Route(ns string, nsLabels map[string]string) string {
	return d.cfg.Route(ns, nsLabels)
}

// Store implements the collector's Destinations.
func (d *Destinations) Store(name string) (uploader.Store, bool) {
	s, ok := d.stores[name]
	return s, ok
}

// Ping checks every configured destination, naming the ones that fail.
func (d *Destinations) Ping(ctx context.Context) error {
	var errs []error
	for name, ping := range d.pings {
		if err := ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("destination %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// secretCredentials reads static credentials from a mounted Secret, again
// every few minutes so that a rotated Secret takes effect without a restart.
func secretCredentials(dir string) (aws.CredentialsProvider, error) {
	p := secretProvider{dir: dir}
	if _, err := p.Retrieve(context.Background()); err != nil {
		return nil, err
	}
	return aws.NewCredentialsCache(p), nil
}

type secretProvider struct{ dir string }

func (p secretProvider) Retrieve(context.Context) (aws.Credentials, error) {
	read := func(name string, required bool) (string, error) {
		b, err := os.ReadFile(filepath.Join(p.dir, name))
		if err != nil {
			if !required && errors.Is(err, os.ErrNotExist) {
				return "", nil
			}
			return "", fmt.Errorf("credentials secret %s: %w", p.dir, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	id, err := read("AWS_ACCESS_KEY_ID", true)
	if err != nil {
		return aws.Credentials{}, err
	}
	secret, err := read("AWS_SECRET_ACCESS_KEY", true)
	if err != nil {
		return aws.Credentials{}, err
	}
	token, err := read("AWS_SESSION_TOKEN", false)
	if err != nil {
		return aws.Credentials{}, err
	}
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: token,
		Source: "crashdump-secret", CanExpire: true, Expires: time.Now().Add(5 * time.Minute)}, nil
}
