package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Reasons a dump or a directory entry is dropped (not uploaded). A fixed
// set, so the label stays bounded.
const (
	DropSymlink     = "symlink"      // a symbolic link where a dump was expected
	DropNotRegular  = "not_regular"  // FIFO, socket or device node
	DropHardlink    = "hardlink"     // a regular file with other names (possibly outside the root)
	DropEmpty       = "empty"        // settled at 0 bytes
	DropCrossDevice = "cross_device" // on another filesystem than the state directory
	DropPathChanged = "path_changed" // a directory of its path was swapped (file or link) between the look and the claim
	DropUnreadable  = "unreadable"   // could not be opened in staging
	DropDiskBudget  = "disk_budget"  // evicted to keep --max-dump-bytes / --max-dump-bytes-per-namespace
	DropRateLimited = "rate_limited" // over the crash-loop limit: manifest-only record stored
	DropNotSelected = "not_selected" // crashdump.io/collect "false", or not annotated in annotated-only mode
	DropFailedTTL   = "failed_ttl"   // kept failing, deleted from failed/ after --failed-ttl
	// DropKernelInvalid: a core handler inbox entry that did not validate
	// (kernel.go), removed.
	DropKernelInvalid = "kernel_invalid"
	// DropKernelRefused: a kernel core the handler refused for disk space
	// or an error: manifest-only record stored.
	DropKernelRefused = "kernel_refused"
)

var dropReasons = []string{DropSymlink, DropNotRegular, DropHardlink, DropEmpty, DropCrossDevice, DropPathChanged, DropUnreadable,
	DropDiskBudget, DropRateLimited, DropNotSelected, DropFailedTTL, DropKernelInvalid, DropKernelRefused}

// metrics are the collector's Prometheus metrics (alerts and runbooks:
// docs/operations.md). Safe for concurrent use.
type metrics struct {
	detected       prometheus.Counter
	uploads        *prometheus.CounterVec
	uploadBytes    prometheus.Counter
	dumpBytes      prometheus.Counter
	spilledBytes   prometheus.Counter
	uploadDuration prometheus.Histogram
	settleDuration prometheus.Histogram
	pendingDumps   prometheus.Gauge
	// parkedDumps: pending dumps whose state is on disk only (park.go).
	parkedDumps  prometheus.Gauge
	pendingBytes prometheus.Gauge
	dropped      *prometheus.CounterVec
	correlations *prometheus.CounterVec
	lastUpload   prometheus.Gauge
	procScans    prometheus.Counter
	freeBytes    prometheus.Gauge
	budgetBytes  prometheus.Gauge
	diskBytes    prometheus.Gauge
	failedDumps  prometheus.Gauge
	failedBytes  prometheus.Gauge
	failedTotal  prometheus.Counter
	crashReports *prometheus.CounterVec

	// changedDuringUpload: uploads redone because the staged file changed
	// while it was read (size, mtime or ctime), by a writer the agent did
	// not see.
	changedDuringUpload prometheus.Counter
	// diskPressure is 1 while the filesystem is under --keep-free.
	diskPressure prometheus.Gauge
	// rejectsUnremembered counts sightings of rejected entries past the
	// reject memory, by reason (see Agent.reject).
	rejectsUnremembered *prometheus.CounterVec
	// lastDump: when each container last left a dump (lastdump.go), set
	// when the dump is attributed; the one metric naming an app's pod,
	// bounded to 32 series of at most 1 h.
	lastDump *lastDumps
	// kernelCores, kernelRefused and kernelHandler come from the core
	// handler's evidence records (kernel.go).
	kernelCores   *prometheus.CounterVec
	kernelRefused *prometheus.CounterVec
	kernelHandler prometheus.Histogram
}

// What became of a claimed crash report.
const (
	ReportAttached     = "attached"      // to its dump, before the dump's manifest
	ReportAttachedLate = "attached_late" // to a dump already stored: object added, manifest rewritten
	ReportOwn          = "own_manifest"  // no dump proven within --max-settle-wait: stored with a manifest of its own
	ReportUnproven     = "unproven"      // a dump of the same name came, but nothing proved the report is its own
)

var reportOutcomes = []string{ReportAttached, ReportAttachedLate, ReportOwn, ReportUnproven}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		detected: f.NewCounter(prometheus.CounterOpts{
			Name: "crashdump_dumps_detected_total",
			Help: "Dumps claimed from the dump directory.",
		}),
		uploads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_uploads_total",
			Help: "Upload attempts by result (success, failure).",
		}, []string{"result"}),
		uploadBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "crashdump_upload_bytes_total",
			Help: "Bytes stored (after compression) by verified uploads.",
		}),
		dumpBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "crashdump_dump_bytes_total",
			Help: "Original size of the dumps uploaded and verified.",
		}),
		rejectsUnremembered: f.NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_rejects_unremembered_total",
			Help: "Sightings of rejected entries (links, FIFOs…) past the 10,000 the agent remembers one by one, by reason: a rescan sees the same ones again, so this counts sightings, not entries; each directory is logged once.",
		}, []string{"reason"}),
		diskPressure: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_disk_pressure",
			Help: "1 while free space on the dump filesystem is under --keep-free. Nothing is evicted for it; dumps are still collected and uploaded (which frees their space), and node copies of stored dumps are released early.",
		}),
		changedDuringUpload: f.NewCounter(prometheus.CounterOpts{
			Name: "crashdump_uploads_redone_changed_total",
			Help: "Uploads done again because the dump changed while it was read (size, mtime or ctime: a writer can set mtime back, not ctime); the node copy is kept until an upload is verified.",
		}),
		spilledBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "crashdump_upload_spilled_bytes_total",
			Help: "Compressed bytes that waited in a spill file in --state-dir while the SHA-256 of a large dump was computed (page cache, written to disk only under memory pressure).",
		}),
		uploadDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "crashdump_upload_duration_seconds",
			Help:    "Time from the start of an upload to the verified object and manifest.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		settleDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "crashdump_settle_duration_seconds",
			Help:    "Time from claim to settled (writer closed and quiet for the settle time).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		pendingDumps: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_pending_dumps",
			Help: "Dumps claimed and not yet uploaded.",
		}),
		parkedDumps: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_pending_parked_dumps",
			Help: "Pending dumps the agent holds no memory for beyond 64 bytes: their record stays in --state-dir until they are due (a backlog costs disk, not memory).",
		}),
		pendingBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_pending_bytes",
			Help: "Bytes of dumps claimed and not yet uploaded.",
		}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_dumps_dropped_total",
			Help: "Dumps or directory entries not uploaded, by reason.",
		}, []string{"reason"}),
		correlations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_correlations_total",
			Help: "Dumps attributed, by correlation method.",
		}, []string{"method"}),
		lastUpload: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_last_upload_timestamp_seconds",
			Help: "Unix time of the last verified upload.",
		}),
		procScans: f.NewCounter(prometheus.CounterOpts{
			Name: "crashdump_proc_scans_total",
			Help: "Full scans of the process table for open dump files.",
		}),
		freeBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_filesystem_free_bytes",
			Help: "Free bytes on the filesystem holding the dump and state directories (set when --keep-free is used).",
		}),
		budgetBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_disk_budget_bytes",
			Help: "--max-dump-bytes: what dumps on this node may hold in all (0: no limit).",
		}),
		diskBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_dump_disk_bytes",
			Help: "Disk the dumps held on this node use, pending and failed (allocated blocks, not apparent sizes, with their entries in --state-dir): what --max-dump-bytes counts.",
		}),
		failedDumps: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_failed_dumps",
			Help: "Dumps given up on after --retry-for, kept in failed/ until --failed-ttl.",
		}),
		failedBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_failed_bytes",
			Help: "Bytes of the dumps in failed/.",
		}),
		failedTotal: f.NewCounter(prometheus.CounterOpts{
			Name: "crashdump_dumps_failed_total",
			Help: "Dumps moved to failed/ after failing to upload for --retry-for.",
		}),
	}
	m.lastDump = newLastDumps(f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crashdump_last_dump_timestamp_seconds",
		Help: "Unix time this agent last attributed a dump (any dump it claimed, uploaded or not) of the container dump_namespace/dump_pod/dump_container; all three empty when not attributed, only dump_namespace for a per-namespace directory. Bounded: at most 32 series (a new container deletes the oldest), none older than 1 h (deleted), none kept across a restart.",
	}, []string{"dump_namespace", "dump_pod", "dump_container"}))
	m.crashReports = f.NewCounterVec(prometheus.CounterOpts{
		Name: "crashdump_crash_reports_total",
		Help: "Claimed .NET crash reports by outcome (attached, attached_late, own_manifest, unproven). A report is attached to a dump only on proof: the same writer process, or its crashed thread in the core.",
	}, []string{"outcome"})
	m.kernelCores = f.NewCounterVec(prometheus.CounterOpts{
		Name: "crashdump_kernel_cores_total",
		Help: "Cores the kernel piped to `crashdump core-handler`, by what the handler did (core, refused, chained, dropped), counted when the agent ingests its record.",
	}, []string{"outcome"})
	m.kernelRefused = f.NewCounterVec(prometheus.CounterOpts{
		Name: "crashdump_kernel_cores_refused_total",
		Help: "Kernel cores the core handler refused (no core written, a manifest-only record), by reason.",
	}, []string{"reason"})
	m.kernelHandler = f.NewHistogram(prometheus.HistogramOpts{
		Name:    "crashdump_kernel_handler_seconds",
		Help:    "Time the core handler took per core, from its start to the inbox entry complete: what the crashing process waited in the kernel.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	for _, o := range kernelOutcomes {
		m.kernelCores.WithLabelValues(o)
	}
	for _, r := range refusalReasons {
		m.kernelRefused.WithLabelValues(r)
	}
	for _, o := range reportOutcomes {
		m.crashReports.WithLabelValues(o)
	}
	for _, r := range []string{"success", "failure"} {
		m.uploads.WithLabelValues(r)
	}
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{DropSymlink, DropNotRegular, DropHardlink, DropCrossDevice, DropPathChanged} {
		m.rejectsUnremembered.WithLabelValues(r)
	}
	for _, meth := range []string{manifest.MethodWriterPID, manifest.MethodKernel, manifest.MethodPath, manifest.MethodHostname, manifest.MethodNone} {
		m.correlations.WithLabelValues(meth)
	}
	return m
}
