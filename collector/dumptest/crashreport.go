package dumptest

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/crashdump-io/crashdump/collector/inspect"
)

// Frame is a stack frame for a crash report.
type Frame struct {
	Managed bool
	Method  string // method_name (managed) or unmanaged_name (native)
	Module  string // filename (managed) or native_module (native)
}

// CrashReport describes a crash report to render.
type CrashReport struct {
	ProcessName    string
	RuntimeVersion string // e.g. "8.0.1125.51716 @Commit: 1234abcd"
	ExceptionType  string // managed_exception_type of the crashed thread; "" for a native crash
	HResult        uint32
	ThreadID       uint64
	Frames         []Frame
	// OtherThreads adds that many non-crashed threads before the crashed one.
	OtherThreads int
	// IP and SP are the crashed thread's ctx registers (defaults when 0).
	// Set them, with ThreadID, from a core with Of: a report is paired with
	// a dump only when its crashed thread is one of the core's.
	IP, SP uint64
}

// Of returns r as the crash report of the process the ELF core at path was
// taken from: its crashed thread is the core's first thread, registers and
// all, the way createdump describes the crash it dumps.
func (r CrashReport) Of(t testing.TB, path string) CrashReport {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := inspect.ReadCore(f, st.Size())
	if err != nil {
		t.Fatalf("read core %s: %v", path, err)
	}
	if len(cs.Registers) == 0 {
		t.Fatalf("core %s has no thread registers (architecture %s)", path, cs.Machine)
	}
	th := cs.Registers[0]
	r.ThreadID, r.IP, r.SP = uint64(th.TID), th.IP, th.SP
	return r
}

// jsonWriter reproduces createdump's CrashReportWriter output exactly
// (dotnet/runtime src/coreclr/debug/createdump/crashreportwriter.cpp):
// JSON_INDENT_VALUE is 1 space per level, `"key" : "value"`, every scalar a
// string, separators ",\n" written before the next item, nothing escaped.
type jsonWriter struct {
	b      strings.Builder
	indent int
	comma  bool
}

func (w *jsonWriter) sep() {
	if w.comma {
		w.b.WriteString(",\n")
	}
	w.b.WriteString(strings.Repeat(" ", w.indent))
}

func (w *jsonWriter) open(key string, marker byte) {
	w.sep()
	if key != "" {
		w.b.WriteString(`"` + key + `" : `)
	}
	w.b.WriteByte(marker)
	w.b.WriteByte('\n')
	w.comma = false
	w.indent++
}

func (w *jsonWriter) close(marker byte) {
	w.b.WriteByte('\n')
	w.indent--
	w.b.WriteString(strings.Repeat(" ", w.indent))
	w.b.WriteByte(marker)
	w.comma = true
}

func (w *jsonWriter) value(key, v string) {
	w.sep()
	w.b.WriteString(`"` + key + `" : "` + v + `"`)
	w.comma = true
}

func (w *jsonWriter) bool(key string, v bool) {
	if v {
		w.value(key, "true")
	} else {
		w.value(key, "false")
	}
}

func (w *jsonWriter) hex(key string, v uint64) { w.value(key, fmt.Sprintf("0x%x", v)) }

// Render returns the crash report's bytes as createdump writes them.
func (r CrashReport) Render() []byte {
	w := &jsonWriter{indent: 1}
	w.b.WriteString("{\n")
	w.open("payload", '{')
	w.value("protocol_version", "1.0.0")
	w.open("configuration", '{')
	w.value("architecture", "amd64")
	w.value("version", r.RuntimeVersion+" ")
	w.close('}')
	if r.ProcessName != "" {
		w.value("process_name", r.ProcessName)
	}
	w.open("threads", '[')
	for i := 0; i <= r.OtherThreads; i++ {
		crashed := i == r.OtherThreads
		w.open("", '{')
		w.bool("is_managed", true)
		w.bool("crashed", crashed)
		tid := r.ThreadID + uint64(r.OtherThreads-i)
		if crashed && r.ExceptionType != "" {
			w.hex("managed_exception_object", 0x7f0e1c00b3a8)
			w.value("managed_exception_type", r.ExceptionType)
			if r.HResult != 0 {
				w.value("managed_exception_hresult", fmt.Sprintf("0x%x", r.HResult))
			}
		}
		w.hex("native_thread_id", tid)
		ip, sp := uint64(0x7f0e2a1b3c4d), uint64(0x7ffd5e6f7a8b)
		if crashed && (r.IP != 0 || r.SP != 0) {
			ip, sp = r.IP, r.SP
		}
		w.open("ctx", '{')
		w.hex("IP", ip)
		w.hex("SP", sp)
		w.hex("BP", 0x7ffd5e6f7a9b)
		w.close('}')
		w.open("stack_frames", '[')
		frames := r.Frames
		if !crashed {
			frames = []Frame{{Managed: false, Method: "__GI___futex_abstimed_wait_cancelable64", Module: "libc.so.6"}}
		}
		for j, f := range frames {
			w.open("", '{')
			w.bool("is_managed", f.Managed)
			w.hex("module_address", 0x7f0e10000000)
			w.hex("stack_pointer", 0x7ffd5e6f7000+uint64(j)*0x40)
			w.hex("native_address", 0x7f0e10001000+uint64(j)*0x10)
			w.hex("native_offset", 0x4f+uint64(j))
			if f.Managed {
				w.hex("token", 0x6000001+uint64(j))
				w.hex("il_offset", 0x10)
			}
			if f.Managed {
				if f.Method != "" {
					w.value("method_name", f.Method)
				}
				w.hex("timestamp", 0x9a1b2c3d)
				w.hex("sizeofimage", 0xc000)
				w.value("filename", f.Module)
				w.value("guid", "8f1e4a2c-3b5d-4e6f-9a7b-1c2d3e4f5a6b")
			} else {
				if f.Method != "" {
					w.value("unmanaged_name", f.Method)
				}
				w.value("native_module", f.Module)
			}
			w.close('}')
		}
		w.close(']')
		w.close('}')
	}
	w.close(']')
	w.close('}')
	w.b.WriteString("\n}\n")
	return []byte(w.b.String())
}

// Boom is the seed scenario's crash: `throw new Exception("Boom!!")` in
// Program.Main, as createdump reports it.
func Boom() CrashReport {
	return CrashReport{
		ProcessName:    "CrashApp",
		RuntimeVersion: "8.0.1125.51716 @Commit: 3e4d1f4a8b2c",
		ExceptionType:  "System.Exception",
		HResult:        0x80131500,
		ThreadID:       0x1a2b,
		OtherThreads:   1,
		Frames: []Frame{
			{Managed: true, Method: "Program.<Main>$(System.String[])", Module: "CrashApp.dll"},
			{Managed: false, Method: "abort", Module: "libc.so.6"},
		},
	}
}
