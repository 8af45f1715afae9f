package pair

import (
	"testing"

	"github.com/crashdump-io/crashdump/collector/inspect"
)

func TestProve(t *testing.T) {
	a := Process{PID: 41, StartTime: 9001}
	b := Process{PID: 42, StartTime: 9002}
	ta := Thread{TID: 1, IP: 0x7f3a1c2b4d5e, SP: 0x7ffd5c3a1e40}
	tb := Thread{TID: 1, IP: 0x7f3a1c2b4d5e, SP: 0x7ffd5c3a2000} // same code, other stack
	for _, tc := range []struct {
		name string
		r    Report
		d    Dump
		want string
	}{
		{"same writer", Report{Writers: []Process{a}}, Dump{Writers: []Process{a}}, BasisWriter},
		{"other writer", Report{Writers: []Process{a}}, Dump{Writers: []Process{b}}, ""},
		{"recycled PID", Report{Writers: []Process{{PID: 41, StartTime: 1}}}, Dump{Writers: []Process{a}}, ""},
		{"no start time proves nothing", Report{Writers: []Process{{PID: 41}}}, Dump{Writers: []Process{{PID: 41}}}, ""},
		{"crashed thread in the core", Report{Thread: ta, ThreadOK: true}, Dump{Threads: []Thread{tb, ta}}, BasisThread},
		{"same TID and IP, other SP", Report{Thread: ta, ThreadOK: true}, Dump{Threads: []Thread{tb}}, ""},
		{"thread not parsed", Report{Thread: ta}, Dump{Threads: []Thread{ta}}, ""},
		{"no evidence at all", Report{}, Dump{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Prove(tc.r, tc.d); got != tc.want {
				t.Fatalf("Prove = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOne(t *testing.T) {
	ta := Thread{TID: 1, IP: 0x10, SP: 0x20}
	tb := Thread{TID: 1, IP: 0x10, SP: 0x30}
	ra := Report{Thread: ta, ThreadOK: true}
	rb := Report{Thread: tb, ThreadOK: true}
	for _, tc := range []struct {
		name      string
		d         Dump
		rs        []Report
		want      int
		wantBasis string
	}{
		{"picks the proven one, not the first", Dump{Threads: []Thread{tb}}, []Report{ra, rb}, 1, BasisThread},
		{"none proven", Dump{Threads: []Thread{{TID: 2, IP: 1, SP: 1}}}, []Report{ra, rb}, -1, ""},
		{"two proven is no proof", Dump{Threads: []Thread{ta, tb}}, []Report{ra, rb}, -1, ""},
		{"no reports", Dump{Threads: []Thread{ta}}, nil, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, basis := One(tc.d, tc.rs)
			if got != tc.want || basis != tc.wantBasis {
				t.Fatalf("One = %d %q, want %d %q", got, basis, tc.want, tc.wantBasis)
			}
		})
	}
}

func TestReportThread(t *testing.T) {
	for _, tc := range []struct {
		name string
		cr   *inspect.CrashReport
		want Thread
		ok   bool
	}{
		{"as createdump writes it", &inspect.CrashReport{CrashedThreadID: "0x1a2b", CrashedThreadIP: "0x7f0e3b2410fc", CrashedThreadSP: "0x7ffd5c3e0700"},
			Thread{TID: 0x1a2b, IP: 0x7f0e3b2410fc, SP: 0x7ffd5c3e0700}, true},
		{"zero context", &inspect.CrashReport{CrashedThreadID: "0x1", CrashedThreadIP: "0x0", CrashedThreadSP: "0x0"}, Thread{}, false},
		{"no crashed thread", &inspect.CrashReport{}, Thread{}, false},
		{"not hex", &inspect.CrashReport{CrashedThreadID: "12", CrashedThreadIP: "0x1", CrashedThreadSP: "0x2"}, Thread{}, false},
		{"garbage", &inspect.CrashReport{CrashedThreadID: "0x1", CrashedThreadIP: "0xzz", CrashedThreadSP: "0x2"}, Thread{}, false},
		{"nil", nil, Thread{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ReportThread(tc.cr)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ReportThread = %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
