// Package staging is the agent's private journal on the node: one directory
// per claimed dump under <state-dir>/staging/<id>/ holding the dump itself
// (moved there by the claim), its crash report, and a small JSON record of
// where the dump came from and how far its upload got. The record is
// rewritten atomically at every step, so an agent killed at any moment
// resumes every dump where it was after restart. Only one agent may use a
// state directory at a time (an flock on <state-dir>/lock).
package staging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"golang.org/x/sys/unix"
)

const (
	recordName = "record.json"
	// DumpName is the claimed dump's name inside its entry directory.
	DumpName = "dump"
	// CrashReportName is the claimed crash report's name.
	CrashReportName = "crashreport.json"
)

var idPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// failedDir holds dumps that could not be uploaded within the retry
// period: kept for inspection until their TTL, never retried automatically.
const failedDir = "failed"

// Dir is an open, locked state directory. Safe for concurrent use as long
// as each entry is used by one goroutine at a time.
type Dir struct {
	state   string
	staging string
	lock    *os.File
}

// Open creates the state directory's layout if needed and takes its lock,
// waiting (and saying so every 30 s) while another agent holds it — the
// normal case for a moment during a DaemonSet rolling update.
func Open(ctx context.Context, stateDir string, log *slog.Logger) (*Dir, error) {
	staging := filepath.Join(stateDir, "staging")
	for _, d := range []string{staging, filepath.Join(stateDir, failedDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create state directory %s: %w", d, err)
		}
	}
	lockPath := filepath.Join(stateDir, "lock")
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state lock %s: %w", lockPath, err)
	}
	waitingSince := time.Time{}
	for {
		err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			lock.Close()
			return nil, fmt.Errorf("lock state directory %s: %w", stateDir, err)
		}
		if waitingSince.IsZero() || time.Since(waitingSince) > 30*time.Second {
			log.Warn("waiting for another agent to release the state directory", "path", lockPath)
			waitingSince = time.Now()
		}
		select {
		case <-ctx.Done():
			lock.Close()
			return nil, fmt.Errorf("lock state directory %s: %w", stateDir, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return &Dir{state: stateDir, staging: staging, lock: lock}, nil
}

// Close releases the lock.
func (d *Dir) Close() error { return d.lock.Close() }

// Path is the staging directory (<state-dir>/staging).
func (d *Dir) Path() string { return d.staging }

// Entry is one claimed dump's directory.
type Entry struct {
	ID   string
	path string
}

// Entry is the entry of id, for an id the caller got from this directory
// (a parked dump's): nothing is read.
func (d *Dir) Entry(id string) (*Entry, error) {
	if !idPattern.MatchString(id) {
		return nil, fmt.Errorf("staging entry: bad id %q", id)
	}
	return &Entry{ID: id, path: filepath.Join(d.staging, id)}, nil
}

// Overhead is what the entry itself uses on disk beside its dump: the
// directory and the files other than the dump (record, crash report). The
// disk budget counts it: 100,000 one-byte dumps take some 800 MB of state.
func (e *Entry) Overhead() int64 {
	var total int64
	var st unix.Stat_t
	if unix.Lstat(e.path, &st) == nil {
		total += st.Blocks * 512
	}
	for _, name := range []string{recordName, CrashReportName} {
		if unix.Lstat(e.Path(name), &st) == nil {
			total += st.Blocks * 512
		}
	}
	return total
}

// Path returns the path of name inside the entry.
func (e *Entry) Path(name string) string { return filepath.Join(e.path, name) }

// OpenDir opens the entry's directory, the destination of a claim.
func (e *Entry) OpenDir() (*os.File, error) {
	f, err := os.Open(e.path)
	if err != nil {
		return nil, fmt.Errorf("open staging entry %s: %w", e.ID, err)
	}
	return f, nil
}

// Create makes the entry for id and writes its first record. The record
// must exist before the dump is moved in, so that a restart always knows
// where a staged dump came from.
func (d *Dir) Create(id string, rec any) (*Entry, error) {
	if !idPattern.MatchString(id) {
		return nil, fmt.Errorf("create staging entry: bad id %q", id)
	}
	e := &Entry{ID: id, path: filepath.Join(d.staging, id)}
	if err := os.Mkdir(e.path, 0o700); err != nil {
		return nil, fmt.Errorf("create staging entry %s: %w", id, err)
	}
	if err := e.Save(rec); err != nil {
		_ = os.RemoveAll(e.path)
		return nil, err
	}
	return e, nil
}

// Save replaces the entry's record atomically.
func (e *Entry) Save(rec any) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", e.ID, err)
	}
	tmp := e.Path(recordName + ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write record %s: %w", e.ID, err)
	}
	if err := os.Rename(tmp, e.Path(recordName)); err != nil {
		return fmt.Errorf("write record %s: %w", e.ID, err)
	}
	return nil
}

// Load reads the entry's record into rec.
func (e *Entry) Load(rec any) error {
	b, err := os.ReadFile(e.Path(recordName))
	if err != nil {
		return fmt.Errorf("read record %s: %w", e.ID, err)
	}
	if err := json.Unmarshal(b, rec); err != nil {
		return fmt.Errorf("decode record %s: %w", e.ID, err)
	}
	return nil
}

// Has reports whether the entry holds name.
func (e *Entry) Has(name string) bool {
	_, err := os.Lstat(e.Path(name))
	return err == nil
}

// Entries lists the entries present, for recovery after a restart.
// Directories that are not entries are reported as errors and left alone.
func (d *Dir) Entries() ([]*Entry, error) { return list(d.staging) }

// EachEntry calls fn for every entry present, reading the directory 1024
// names at a time: a backlog of 100,000 entries listed in whole cost the
// restarted agent some 20 MiB at once. Directories that are not entries
// are reported as errors and left alone.
func (d *Dir) EachEntry(fn func(*Entry)) error {
	f, err := os.Open(d.staging)
	if err != nil {
		return fmt.Errorf("list %s: %w", d.staging, err)
	}
	defer f.Close()
	var errs []error
	for {
		des, err := f.ReadDir(1024)
		for _, de := range des {
			if !de.IsDir() || !idPattern.MatchString(de.Name()) {
				if len(errs) < 10 {
					errs = append(errs, fmt.Errorf("unexpected %s in %s", de.Name(), d.staging))
				}
				continue
			}
			fn(&Entry{ID: de.Name(), path: filepath.Join(d.staging, de.Name())})
		}
		if errors.Is(err, io.EOF) || (err == nil && len(des) == 0) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", d.staging, err))
			break
		}
	}
	return errors.Join(errs...)
}

// FailedEntries lists the dumps given up on.
func (d *Dir) FailedEntries() ([]*Entry, error) { return list(filepath.Join(d.state, failedDir)) }

func list(dir string) ([]*Entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []*Entry
	var errs []error
	for _, de := range des {
		if !de.IsDir() || !idPattern.MatchString(de.Name()) {
			errs = append(errs, fmt.Errorf("unexpected %s in %s", de.Name(), dir))
			continue
		}
		out = append(out, &Entry{ID: de.Name(), path: filepath.Join(dir, de.Name())})
	}
	return out, errors.Join(errs...)
}

// Fail moves an entry to <state-dir>/failed/, out of the retry loop. The
// entry keeps its contents and record; e points at the new place after.
func (d *Dir) Fail(e *Entry) error {
	dst := filepath.Join(d.state, failedDir, e.ID)
	if err := os.Rename(e.path, dst); err != nil {
		return fmt.Errorf("move %s to failed: %w", e.ID, err)
	}
	e.path = dst
	return nil
}

// Remove deletes the entry and everything in it: the node copy of a dump
// the store has confirmed.
func (d *Dir) Remove(e *Entry) error {
	if err := os.RemoveAll(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove staging entry %s: %w", e.ID, err)
	}
	return nil
}
