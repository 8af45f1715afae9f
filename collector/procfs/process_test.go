//go:build linux

package procfs

import (
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// realCgroup is the real node output from the task brief (cgroupfs,
// containerd, BestEffort).
const realCgroup = "9:name=systemd:/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n" +
	"4:memory:/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n" +
	"0::/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n"

// status returns a /proc/<pid>/status in the kernel's layout (Linux 6.x,
// abridged) with the given Name and NSpid lines ("" leaves a line out).
func status(name, nspid string) string {
	var b strings.Builder
	if name != "" {
		b.WriteString("Name:\t" + name + "\n")
	}
	b.WriteString("Umask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t4200\nTracerPid:\t0\n")
	b.WriteString("Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t256\nGroups:\t \n")
	b.WriteString("NStgid:\t4242\t1\n")
	if nspid != "" {
		b.WriteString("NSpid:\t" + nspid + "\n")
	}
	b.WriteString("NSpgid:\t4242\t1\nNSsid:\t4242\t1\nVmPeak:\t  274989 kB\nThreads:\t22\n")
	return b.String()
}

func TestProcessFixture(t *testing.T) {
	cg, _ := ParseCgroup([]byte(realCgroup))
	tests := []struct {
		name   string
		status string
		comm   string // "" = no comm file
		exe    string // "" = no exe link
		stat   string // "" = no stat file
		want   Process
	}{
		{
			name:   "container process",
			status: status("dotnet", "4242\t1"),
			exe:    "/usr/share/dotnet/dotnet",
			stat:   statLine(4242, 123456),
			want:   Process{PID: 4242, NSPID: 1, Comm: "dotnet", Exe: "/usr/share/dotnet/dotnet", StartTime: 123456, Cgroup: cg},
		},
		{
			name:   "nested pid namespaces",
			status: status("createdump", "4242\t17\t9"),
			exe:    "/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.0/createdump",
			want:   Process{PID: 4242, NSPID: 9, Comm: "createdump", Exe: "/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.0/createdump", Cgroup: cg},
		},
		{
			name:   "host process",
			status: status("java", "4242"),
			exe:    "/usr/lib/jvm/bin/java (deleted)",
			want:   Process{PID: 4242, NSPID: 4242, Comm: "java", Exe: "/usr/lib/jvm/bin/java (deleted)", Cgroup: cg},
		},
		{
			name:   "kernel before NSpid, exe unreadable",
			status: status("node", ""),
			want:   Process{PID: 4242, Comm: "node", Cgroup: cg},
		},
		{
			name:   "name with blanks",
			status: status(" my app", "4242\t1"),
			want:   Process{PID: 4242, NSPID: 1, Comm: " my app", Cgroup: cg},
		},
		{
			name:   "no Name line falls back to comm",
			status: status("", "4242\t1"),
			comm:   "dotnet\n",
			want:   Process{PID: 4242, NSPID: 1, Comm: "dotnet", Cgroup: cg},
		},
		{
			name:   "garbage NSpid",
			status: status("dotnet", "4242\tx"),
			want:   Process{PID: 4242, Comm: "dotnet", Cgroup: cg},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newProcFixture(t)
			f.file(4242, "status", tt.status)
			f.file(4242, "cgroup", realCgroup)
			if tt.comm != "" {
				f.file(4242, "comm", tt.comm)
			}
			if tt.stat != "" {
				f.file(4242, "stat", tt.stat)
			}
			if tt.exe != "" {
				if err := os.Symlink(tt.exe, filepath.Join(f.pidDir(4242), "exe")); err != nil {
					t.Fatal(err)
				}
			}
			got, err := New(f.root).Process(4242)
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if got != tt.want {
				t.Errorf("Process() =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestProcessFixtureErrors(t *testing.T) {
	f := newProcFixture(t)
	f.file(10, "status", status("x", "10")) // no cgroup file
	f.file(11, "status", status("y", "11"))
	f.file(11, "cgroup", "0::/\n") // not a pod: no error, empty Cgroup
	fs := New(f.root)

	_, err := fs.Process(99)
	if err == nil || !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("Process(missing) error = %v, want one wrapping fs.ErrNotExist", err)
	}
	if err != nil && !strings.Contains(err.Error(), filepath.Join(f.root, "99", "status")) {
		t.Errorf("error %q does not say what was read", err)
	}
	if _, err := fs.Process(10); err == nil || !strings.Contains(err.Error(), "cgroup") {
		t.Errorf("Process(no cgroup) error = %v, want a cgroup read error", err)
	}
	for _, pid := range []int{0, -1} {
		if _, err := fs.Process(pid); err == nil {
			t.Errorf("Process(%d) succeeded", pid)
		}
	}
	p, err := fs.Process(11)
	if err != nil {
		t.Fatalf("Process(non-pod): %v", err)
	}
	if p.Cgroup != (Cgroup{}) || p.Comm != "y" || p.NSPID != 11 {
		t.Errorf("Process(non-pod) = %+v", p)
	}
}

func TestParseStartTime(t *testing.T) {
	tests := []struct {
		stat string
		want uint64
	}{
		{statLine(4242, 987654), 987654},
		// A real line (Linux 6.x, comm with a blank).
		{"1 (process api) S 0 1 1 0 -1 4194560 1393 0 0 0 3 1 0 0 20 0 8 0 58 41312256 1266 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", 58},
		{"42 (x", 0},
		{"42 (x) S 1 2 3", 0},
		{"", 0},
		{"42 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 -5 1 1", 0},
	}
	for _, tt := range tests {
		if got := parseStartTime([]byte(tt.stat)); got != tt.want {
			t.Errorf("parseStartTime(%q) = %d, want %d", tt.stat, got, tt.want)
		}
	}
}

// TestProcessRealProc reads this test process from the machine's /proc.
func TestProcessRealProc(t *testing.T) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no procfs here: %v", err)
	}
	me := os.Getpid()
	p, err := New("").Process(me)
	if err != nil {
		t.Fatalf("Process(self): %v", err)
	}
	if p.PID != me {
		t.Errorf("PID = %d, want %d", p.PID, me)
	}
	// NSpid lists one PID per PID namespace; with one, the process is in
	// the reader's namespace and calls itself by the same number.
	var nsFields []string
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			nsFields = strings.Fields(rest)
		}
	}
	switch {
	case len(nsFields) == 1 && p.NSPID != me:
		t.Errorf("NSPID = %d, want %d (not in a PID namespace)", p.NSPID, me)
	case len(nsFields) > 1 && strconv.Itoa(p.NSPID) != nsFields[len(nsFields)-1]:
		t.Errorf("NSPID = %d, want the last of %v", p.NSPID, nsFields)
	case len(nsFields) > 0 && p.NSPID <= 0:
		t.Errorf("NSPID = %d", p.NSPID)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != exe {
		t.Errorf("Exe = %q, want %q", p.Exe, exe)
	}
	// The kernel keeps the first 15 bytes of the executable's name.
	wantComm := filepath.Base(exe)
	if len(wantComm) > 15 {
		wantComm = wantComm[:15]
	}
	if p.Comm != wantComm {
		t.Errorf("Comm = %q, want %q", p.Comm, wantComm)
	}
	if p.StartTime == 0 {
		t.Error("StartTime = 0")
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want, ok := ParseCgroup(cg)
	if p.Cgroup != want {
		t.Errorf("Cgroup = %+v, want %+v", p.Cgroup, want)
	}
	checkCgroupInvariants(t, p.Cgroup, ok)
}
