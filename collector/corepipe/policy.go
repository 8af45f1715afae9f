package corepipe

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// PolicyName is the snapshot's file name in <state-dir>/corepipe.
const PolicyName = "policy.json"

// maxPolicySize bounds what the handler reads of a snapshot.
const maxPolicySize = 4 << 20

// Policy is the snapshot of the agent's protection rules that the handler
// applies at write time. The agent rewrites it (WritePolicy) whenever its
// state changes and at least every MaxAgeSeconds/2; the handler treats it
// as absent when it is older than MaxAgeSeconds (harmless mode). The
// handler's checks only save disk before it is spent: the agent applies
// its full rules again when it ingests an entry.
type Policy struct {
	SchemaVersion int       `json:"schemaVersion"` // 1
	GeneratedAt   time.Time `json:"generatedAt"`
	// MaxAgeSeconds: the snapshot is stale after GeneratedAt + MaxAgeSeconds.
	MaxAgeSeconds int64 `json:"maxAgeSeconds"`
	// BudgetBytesRemaining is what the node's dump budget (--max-dump-bytes)
	// still allows at GeneratedAt, not counting the inbox, which the
	// handler measures itself; -1: no budget.
	BudgetBytesRemaining int64 `json:"budgetBytesRemaining"`
	// KeepFreeBytes is the free space (--keep-free) the state filesystem
	// keeps; the handler measures the free space itself. 0: not watched.
	KeepFreeBytes int64 `json:"keepFreeBytes"`
	// MaxCoreBytes caps one core on disk (0: only the budget caps it).
	MaxCoreBytes int64 `json:"maxCoreBytes,omitempty"`
	// LimitedContainers are the container IDs over their crash-loop limit
	// (--max-dumps-per-window) at GeneratedAt: their cores get
	// manifest-only records.
	LimitedContainers []string `json:"limitedContainers,omitempty"`
	// MaxCoresPerContainer bounds the cores the handler accepts from one
	// container after GeneratedAt, until the agent has counted them in a
	// new snapshot (0: no bound beyond LimitedContainers).
	MaxCoresPerContainer int `json:"maxCoresPerContainer,omitempty"`
	// NamespaceInclude / NamespaceExclude select namespaces (empty include:
	// all). The handler knows a pod by its UID only, so PodNamespaces maps
	// the UIDs of this node's pods to their namespaces; a pod missing from
	// it (newer than the snapshot) is accepted and judged at ingestion.
	NamespaceInclude []string          `json:"namespaceInclude,omitempty"`
	NamespaceExclude []string          `json:"namespaceExclude,omitempty"`
	PodNamespaces    map[string]string `json:"podNamespaces,omitempty"`
	// OptedOutPodUIDs are pods annotated crashdump.io/collect: "false" (or
	// not selected by --collect-annotated-only).
	OptedOutPodUIDs []string `json:"optedOutPodUIDs,omitempty"`
}

// Stale reports whether p is too old to be trusted at now.
func (p *Policy) Stale(now time.Time) bool {
	if p.MaxAgeSeconds <= 0 {
		return true
	}
	age := now.Sub(p.GeneratedAt)
	return age > time.Duration(p.MaxAgeSeconds)*time.Second || age < -time.Minute
}

// Harmless-mode limits, used when the snapshot is missing, invalid or stale.
const (
	HarmlessWindow         = 10 * time.Minute // at most one core per container per window
	HarmlessInboxBytes     = 2 << 30          // the inbox on disk, cores and records together
	HarmlessKeepFreePct    = 10               // percent of the filesystem kept free
	HarmlessMaxEntries     = 256              // inbox entries of any kind
	snapshotMaxEntries     = 4096             // inbox entries even with a snapshot
	defaultPolicyMaxAgeSec = 300
)

// PolicyPath is where the snapshot lives for a state directory.
func PolicyPath(stateDir string) string { return filepath.Join(stateDir, DirName, PolicyName) }

// DirName is the handler's directory in the state directory.
const DirName = "corepipe"

// WritePolicy writes p atomically (temporary file, fsync, rename) to path,
// 0600, creating its directory 0700. Defaults: SchemaVersion 1,
// GeneratedAt now, MaxAgeSeconds 300.
func WritePolicy(path string, p Policy) error {
	if p.SchemaVersion == 0 {
		p.SchemaVersion = 1
	}
	if p.GeneratedAt.IsZero() {
		p.GeneratedAt = time.Now()
	}
	p.GeneratedAt = p.GeneratedAt.UTC()
	if p.MaxAgeSeconds == 0 {
		p.MaxAgeSeconds = defaultPolicyMaxAgeSec
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".policy-*")
	if err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write policy: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write policy: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	return nil
}

// ReadPolicy reads a snapshot written by WritePolicy. A missing file is
// reported as errors.Is(err, fs.ErrNotExist). The file is opened without
// following a symlink.
func ReadPolicy(path string) (*Policy, error) {
	b, err := readNoFollow(path, maxPolicySize)
	if err != nil {
		return nil, err
	}
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if p.SchemaVersion != 1 {
		return nil, fmt.Errorf("policy %s: schemaVersion %d, want 1", path, p.SchemaVersion)
	}
	return &p, nil
}

var errTooLarge = errors.New("file too large")
