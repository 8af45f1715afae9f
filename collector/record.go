package collector

import (
	"time"

	"github.com/crashdump-io/crashdump/collector/dumpfs"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

const recordVersion = 1

// kindReport marks the record of a staged crash report.
const kindReport = "crash-report"

// Journal states of a staged dump.
const (
	// stateClaiming: the record exists, the dump may not have been moved
	// in yet. On recovery an entry without its dump is discarded (the
	// dump is still in the dump directory and will be found again).
	stateClaiming = "claiming"
	// stateClaimed: the dump is in staging.
	stateClaimed = "claimed"
)

// record is the journal entry of one staged dump (staging/<id>/record.json).
type record struct {
	Version   int       `json:"version"`
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Path      string    `json:"path"`
	ClaimedAt time.Time `json:"claimedAt"`
	// Kind is kindReport for a claimed crash report waiting for its dump
	// (the report is the entry's DumpName file); "" for a dump.
	Kind string `json:"kind,omitempty"`
	// CrashReport: the dump's own crash report is in the entry, proven by
	// ReportBasis (pair.BasisWriter or pair.BasisThread).
	CrashReport bool   `json:"crashReport,omitempty"`
	ReportBasis string `json:"reportBasis,omitempty"`
	// Scanned is set once the writers at claim time have been recorded.
	Scanned bool     `json:"scanned,omitempty"`
	Writers []Writer `json:"writers,omitempty"`
	// Plan is fixed before the first upload attempt and reused by every
	// later one, so that the key (and the attribution in it) never changes.
	Plan *plan `json:"plan,omitempty"`
	// UploadStarted means an upload may have been started: a restart must
	// abandon unfinished multipart uploads of the key first.
	UploadStarted bool   `json:"uploadStarted,omitempty"`
	Attempts      int    `json:"attempts,omitempty"`
	LastError     string `json:"lastError,omitempty"`
	// FailedAt is when the dump was moved to failed/.
	FailedAt time.Time `json:"failedAt,omitzero"`
	// Grew says the dump grew after an upload of it had started: its
	// writer (never seen) paused longer than the settle time. Every later
	// manifest is marked incomplete with this reason.
	Grew string `json:"grew,omitempty"`
	// Kernel is set for a core of the core_pattern handler (kernel.go):
	// its evidence, the only source of its attribution.
	Kernel *kernelRecord `json:"kernel,omitempty"`
}

// plan is what the agent decided to store for a settled dump.
type plan struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
	// ChangeTime is the file's ctime when the plan was made: the upload
	// trusts its hash only if it is the same after the upload (a writer
	// can restore mtime, not ctime). Zero in records of older agents.
	ChangeTime time.Time `json:"changeTime,omitzero"`
	// NamespaceMaxBytes is the namespace's own disk budget from its label
	// crashdump.io/max-dump-bytes (-1: the label says none; 0: no label).
	NamespaceMaxBytes int64 `json:"namespaceMaxBytes,omitempty"`
	// SHA256 is known once the upload has read the file.
	SHA256   string             `json:"sha256,omitempty"`
	Compress bool               `json:"compress"`
	Key      string             `json:"key"`
	Manifest *manifest.Manifest `json:"manifest"`
	// Action is what the policy decided (upload, manifest-only, skip) and
	// why; Destination is where it goes. Both are fixed with the key.
	Action       string `json:"action"`
	ActionReason string `json:"actionReason,omitempty"`
	Destination  string `json:"destination"`
}

// matches reports whether the file is still the one p was made for: the
// same size, mtime and, when recorded, ctime. A nil plan matches nothing.
func (p *plan) matches(info dumpfs.Info) bool {
	if p == nil || p.Size != info.Size || !p.ModTime.Equal(info.Mtime) {
		return false
	}
	return p.ChangeTime.IsZero() || p.ChangeTime.Equal(info.Ctime)
}
