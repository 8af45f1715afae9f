package collector_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector/dumptest"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// writerEnv makes the test binary a createdump stand-in: a real process
// that opens, writes and closes files when told on stdin, so the agent sees
// real descriptors in the real /proc.
const writerEnv = "CRASHDUMP_TEST_WRITER"

func TestMain(m *testing.M) {
	if os.Getenv(writerEnv) == "1" {
		os.Exit(writerMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// writerMain runs the stand-in: "open PATH" (O_CREAT|O_TRUNC, as createdump
// opens its files), "write SRC" (copy SRC into it), "close".
func writerMain(in io.Reader, out io.Writer) int {
	var f *os.File
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch cmd {
		case "open":
			f, err = os.OpenFile(arg, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		case "write":
			var b []byte
			if b, err = os.ReadFile(arg); err == nil {
				_, err = f.Write(b)
			}
		case "close":
			err = f.Close()
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Fprintln(out, "error", err)
			return 1
		}
		fmt.Fprintln(out, "ok")
	}
	return 0
}

type writerProc struct {
	t   *testing.T
	pid int
	in  io.WriteCloser
	out *bufio.Reader
}

func startWriter(t *testing.T) *writerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &writerProc{t: t, pid: cmd.Process.Pid, in: in, out: bufio.NewReader(out)}
}

func (w *writerProc) do(cmd string) {
	w.t.Helper()
	if _, err := fmt.Fprintln(w.in, cmd); err != nil {
		w.t.Fatalf("writer %d: %s: %v", w.pid, cmd, err)
	}
	line, err := w.out.ReadString('\n')
	if err != nil || line != "ok\n" {
		w.t.Fatalf("writer %d: %s: %q %v", w.pid, cmd, line, err)
	}
}

// waitEvidence waits until a staged record names pid as a writer of the
// file claimed from rel: the agent has seen the descriptor.
func (e *env) waitEvidence(t *testing.T, rel string, pid int) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("writer %d of %s recorded", pid, rel), func() bool {
		recs, _ := filepath.Glob(filepath.Join(e.stateDir, "staging", "*", "record.json"))
		for _, r := range recs {
			b, _ := os.ReadFile(r)
			if bytes.Contains(b, []byte(`"path":"`+rel+`"`)) && bytes.Contains(b, []byte(`"hostPID":`+strconv.Itoa(pid)+",")) {
				return true
			}
		}
		return false
	})
}

// TestCrashReportSameNameRace: three replicas crash one after the other
// into one shared directory, as the seed's Deployment does. Each writes
// coredump.1.dmp.crashreport.json, closes it, and the next one's report of
// the same name follows before any dump is done; then the dumps are
// written, and they finish in the order B, A, C. Every dump must be stored
// with its own report (exception type and bytes), proven by the same
// writer process or by the report's crashed thread being in the core. A
// pairing by name fails here whichever report it picks first: B finishes
// first, and neither the oldest (A's) nor the newest (C's) report is B's.
func TestCrashReportSameNameRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		// reportsByWriter: the writer holds its report open until the
		// agent saw it (createdump writing a large report), and the dumps
		// are not ELF cores: only the writer proves the pairing. Else the
		// test process renames each finished report into place (no writer to see),
		// the dumps are real gcores, and only the crashed thread does.
		reportsByWriter bool
		basis           string
	}{
		{"writer", true, "writer"},
		{"thread", false, "thread"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true)
			stop := e.start(e.config())
			src := t.TempDir()
			const rel = "coredump.1.dmp"
			dumpPath := filepath.Join(e.dumpDir, rel)
			reportPath := dumpPath + manifest.CrashReportSuffix

			type crash struct {
				w             *writerProc
				exc           string
				dump, report  []byte
				dumpSrc, rSrc string
			}
			var crashes []*crash
			for i, exc := range []string{"System.InvalidOperationException", "System.NullReferenceException", "System.OutOfMemoryException"} {
				c := &crash{w: startWriter(t), exc: exc}
				c.dumpSrc = filepath.Join(src, fmt.Sprintf("dump%d", i))
				r := dumptest.Boom()
				r.ExceptionType = exc
				if tc.reportsByWriter {
					d := bytes.Repeat([]byte{byte('a' + i)}, 96<<10)
					copy(d, "MDMP\x93\xa7\x00\x00")
					if err := os.WriteFile(c.dumpSrc, d, 0o644); err != nil {
						t.Fatal(err)
					}
				} else {
					dumptest.SleepCore(t, c.dumpSrc)
					r = r.Of(t, c.dumpSrc)
				}
				c.report = r.Render()
				c.rSrc = filepath.Join(src, fmt.Sprintf("report%d", i))
				if err := os.WriteFile(c.rSrc, c.report, 0o644); err != nil {
					t.Fatal(err)
				}
				var err error
				if c.dump, err = os.ReadFile(c.dumpSrc); err != nil {
					t.Fatal(err)
				}
				crashes = append(crashes, c)
			}

			// The reports, one after the other, same name.
			for _, c := range crashes {
				if tc.reportsByWriter {
					c.w.do("open " + reportPath)
					e.waitEvidence(t, rel+manifest.CrashReportSuffix, c.w.pid)
					c.w.do("write " + c.rSrc)
					c.w.do("close")
				} else {
					e.placeWhole(t, rel+manifest.CrashReportSuffix, c.report)
				}
				eventually(t, 20*time.Second, "report claimed", func() bool {
					_, err := os.Lstat(reportPath)
					return os.IsNotExist(err)
				})
			}
			// Then the dumps, all open at once; they finish B, A, C.
			for _, c := range crashes {
				c.w.do("open " + dumpPath)
				e.waitEvidence(t, rel, c.w.pid)
				c.w.do("write " + c.dumpSrc)
			}
			for n, i := range []int{1, 0, 2} {
				crashes[i].w.do("close")
				eventually(t, 30*time.Second, fmt.Sprintf("%d dumps stored", n+1), func() bool { return len(e.dumps()) == n+1 })
			}
			eventually(t, 10*time.Second, "nothing left on the node", func() bool { return emptyDir(t, e.dumpDir) && len(e.staged()) == 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			ds := e.dumps()
			if len(ds) != 3 {
				t.Fatalf("%d objects with manifests, want the 3 dumps (and no report on its own)", len(ds))
			}
			for _, d := range ds {
				var c *crash
				for _, x := range crashes {
					if bytes.Equal(d.original(t), x.dump) {
						c = x
					}
				}
				if c == nil {
					t.Fatalf("%s: stored bytes are no crash's dump", d.key)
				}
				cr := d.manifest.CrashReport
				switch {
				case cr == nil:
					t.Errorf("%s (%s's dump): no crash report", d.key, c.exc)
				case cr.ExceptionType != c.exc:
					t.Errorf("%s: crash report of %s on %s's dump", d.key, cr.ExceptionType, c.exc)
				case cr.PairedBy != tc.basis:
					t.Errorf("%s: paired by %q, want %q", d.key, cr.PairedBy, tc.basis)
				case cr.Key != d.key+manifest.CrashReportSuffix:
					t.Errorf("%s: report stored as %q", d.key, cr.Key)
				default:
					if got := e.read(cr.Key, false); !bytes.Equal(got, c.report) {
						t.Errorf("%s: stored report is not %s's (%d bytes)", d.key, c.exc, len(got))
					}
				}
			}
		})
	}
}

// TestCrashReportLateAndAlone: a report written after its dump was stored
// is added to it (object beside it, manifest rewritten); a report no dump
// proves, even with a dump of the same name beside it, is stored with a
// manifest of its own (kind crash-report) after --max-settle-wait, the way
// DOTNET_EnableCrashReportOnly=1 or a failed createdump leave one.
//
// Every file here is renamed into place whole. Written in place, the test
// process would be the open writer of both "alone" files, and the agent,
// when its fd scan catches that writer, rightly pairs them by writer: one
// process wrote both. A fresh-clone CI run caught it so; which basis
// applies must not depend on the scan's timing.
func TestCrashReportLateAndAlone(t *testing.T) {
	e := newEnv(t, true)
	cfg := e.config()
	cfg.MaxSettleWait = 3 * time.Second
	stop := e.start(cfg)
	src := t.TempDir()

	// Late: the dump first, its report once the dump is stored.
	lateCore := filepath.Join(src, "late")
	dumptest.SleepCore(t, lateCore)
	lateDump, err := os.ReadFile(lateCore)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dumpDir, "late"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.placeWhole(t, "late/coredump.1.dmp", lateDump)
	eventually(t, 30*time.Second, "late dump stored", func() bool { return len(e.dumps()) == 1 })
	lateReport := dumptest.Boom().Of(t, lateCore).Render()
	e.placeWhole(t, "late/coredump.1.dmp.crashreport.json", lateReport)

	// Alone: a report whose same-name dump is another process's core.
	otherCore := filepath.Join(src, "other")
	dumptest.SleepCore(t, otherCore)
	strangerCore := filepath.Join(src, "stranger")
	dumptest.SleepCore(t, strangerCore)
	aloneReport := dumptest.Boom().Of(t, strangerCore).Render()
	if err := os.MkdirAll(filepath.Join(e.dumpDir, "alone"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.placeWhole(t, "alone/coredump.1.dmp.crashreport.json", aloneReport)
	otherDump, err := os.ReadFile(otherCore)
	if err != nil {
		t.Fatal(err)
	}
	e.placeWhole(t, "alone/coredump.1.dmp", otherDump)
	// Lone: a report and no dump at all (EnableCrashReportOnly).
	if err := os.MkdirAll(filepath.Join(e.dumpDir, "lone"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.placeWhole(t, "lone/coredump.1.dmp.crashreport.json", aloneReport)

	eventually(t, 30*time.Second, "everything stored", func() bool {
		ds := e.dumps()
		if len(ds) != 4 {
			return false
		}
		for _, d := range ds {
			if d.manifest.File.Path == "late/coredump.1.dmp" && d.manifest.CrashReport == nil {
				return false
			}
		}
		return emptyDir(t, e.dumpDir) && len(e.staged()) == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]stored{}
	for _, d := range e.dumps() {
		byPath[d.manifest.File.Path] = d
	}

	late := byPath["late/coredump.1.dmp"]
	if cr := late.manifest.CrashReport; cr == nil || cr.PairedBy != "thread" || cr.Key != late.key+manifest.CrashReportSuffix {
		t.Errorf("late dump's crash report %+v", cr)
	} else if got := e.read(cr.Key, false); !bytes.Equal(got, lateReport) {
		t.Errorf("late report stored with %d bytes, want %d", len(got), len(lateReport))
	}
	if !bytes.Equal(late.original(t), lateDump) || late.manifest.File.CrashReport != "coredump.1.dmp.crashreport.json" {
		t.Errorf("late dump manifest %+v", late.manifest.File)
	}

	other := byPath["alone/coredump.1.dmp"]
	if other.manifest.CrashReport != nil || other.manifest.File.CrashReport != "" {
		t.Errorf("a dump of the same name took a report that is not its own: %+v", other.manifest.CrashReport)
	}
	alone := byPath["alone/coredump.1.dmp.crashreport.json"]
	if alone.manifest == nil || alone.manifest.Kind != manifest.KindCrashReport || alone.manifest.CrashReport == nil ||
		alone.manifest.CrashReport.ExceptionType != "System.Exception" {
		t.Fatalf("report alone: manifest %+v", alone.manifest)
	}
	if !bytes.Equal(alone.original(t), aloneReport) {
		t.Errorf("report alone stored with other bytes")
	}
	lone := byPath["lone/coredump.1.dmp.crashreport.json"]
	if lone.manifest == nil || lone.manifest.Kind != manifest.KindCrashReport || !bytes.Equal(lone.original(t), aloneReport) {
		t.Fatalf("report with no dump: manifest %+v", lone.manifest)
	}
	// alone's report met a dump of its name that did not prove it
	// (unproven); lone's met none (own_manifest).
	for outcome, want := range map[string]float64{"attached_late": 1, "own_manifest": 1, "unproven": 1, "attached": 0} {
		if got := metric(t, e.reg, "crashdump_crash_reports_total", "outcome", outcome); got != want {
			t.Errorf("crashdump_crash_reports_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// placeWhole puts data at rel in the dump directory by renaming a finished
// file into place, so no process has it open when the agent sees it.
func (e *env) placeWhole(t *testing.T, rel string, data []byte) {
	t.Helper()
	tmp := filepath.Join(e.base, "placing")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dumpDir, rel)); err != nil {
		t.Fatal(err)
	}
}
