package inspect

import (
	"bytes"
	"fmt"
	"strings"
)

// crWriter is a line-for-line port of createdump's JsonWriter
// (src/coreclr/debug/createdump/jsonwriter.cpp, formerly inlined in
// crashreportwriter.cpp, in dotnet/runtime), so that the test fixtures are
// byte for byte what the runtime writes:
//
//   - JSON_INDENT_VALUE is 1: one space per level, starting at 1 inside the
//     root object;
//   - an item is written as [",\n" if an item precedes it] + indent + item,
//     so the comma ends the previous line;
//   - values are written as `"key" : "value"` without escaping;
//   - a container closes with "\n" + indent + marker;
//   - every item is one write(2), which is where a killed writer can leave
//     the file.
type crWriter struct {
	buf    bytes.Buffer
	indent int
	comma  bool
	// ends holds the file size after each write: where the file ends if
	// createdump is killed between two writes.
	ends []int
}

const jsonIndentValue = 1 // JSON_INDENT_VALUE in crashreportwriter.h / jsonwriter.h

// newCRWriter is JsonWriter::OpenWriter.
func newCRWriter() *crWriter {
	w := &crWriter{indent: jsonIndentValue}
	w.write("{\n")
	return w
}

func (w *crWriter) write(s string) {
	w.buf.WriteString(s)
	w.ends = append(w.ends, w.buf.Len())
}

func (w *crWriter) separator() string {
	s := ""
	if w.comma {
		s = ",\n"
	}
	return s + strings.Repeat(" ", w.indent)
}

func (w *crWriter) openValue(key string, marker byte) {
	text := w.separator()
	if key != "" {
		text += `"` + key + `" : `
	}
	text += string(marker) + "\n"
	w.comma = false
	w.indent += jsonIndentValue
	w.write(text)
}

func (w *crWriter) closeValue(marker byte) {
	w.indent -= jsonIndentValue
	text := "\n" + strings.Repeat(" ", w.indent) + string(marker)
	w.comma = true
	w.write(text)
}

func (w *crWriter) value(key, value string) {
	text := w.separator() + `"` + key + `" : "` + value + `"`
	w.comma = true
	w.write(text)
}

func (w *crWriter) valueBool(key string, v bool) {
	if v {
		w.value(key, "true")
	} else {
		w.value(key, "false")
	}
}

func (w *crWriter) value32(key string, v uint32) { w.value(key, fmt.Sprintf("0x%x", v)) }
func (w *crWriter) value64(key string, v uint64) { w.value(key, fmt.Sprintf("0x%x", v)) }
func (w *crWriter) openObject(key string)        { w.openValue(key, '{') }
func (w *crWriter) closeObject()                 { w.closeValue('}') }
func (w *crWriter) openArray(key string)         { w.openValue(key, '[') }
func (w *crWriter) closeArray()                  { w.closeValue(']') }

// closeWriter is JsonWriter::CloseWriter.
func (w *crWriter) closeWriter() { w.write("\n}\n") }

// The fixture model: what CrashInfo/ThreadInfo/StackFrame hold when
// CrashReportWriter runs.

type fxModule struct {
	name      string
	timestamp uint32
	size      uint32
	guid      string
}

type fxFrame struct {
	managed                          bool
	moduleAddr, sp, ip, nativeOffset uint64
	token, ilOffset                  uint32
	method                           string    // "" when GetMethod() returns nothing (native frames)
	module                           *fxModule // nil when the module is not found
	symbol                           string    // unmanaged_name of native frames
}

type fxThread struct {
	tid       uint64
	managed   bool
	excObject uint64
	excType   string
	hresult   uint32
	ip, sp    uint64
	frames    []fxFrame
	// repeated > 0 wraps frames[repeatBegin:repeatEnd] as createdump does
	// for stack overflows; repeatEnd == len(frames) reproduces the writer
	// leaving the wrapper open when the repetition runs to the end.
	repeated               uint32
	repeatBegin, repeatEnd int
}

type fxReport struct {
	// legacy writes what the .NET 6 runtime wrote: the frame list is
	// "unmanaged_frames" and every thread with an exception is "crashed".
	legacy      bool
	arch        string
	version     string // sccsid without "@(#)Version "
	processName string // "" when there is no main module
	crashTID    uint64
	threads     []fxThread
}

// write is CrashReportWriter::WriteCrashReport followed by CloseWriter.
func (r fxReport) write() *crWriter {
	w := newCRWriter()
	w.openObject("payload")
	w.value("protocol_version", "1.0.0")
	w.openObject("configuration")
	w.value("architecture", r.arch)
	w.value("version", r.version+" ") // "the analyzer requires a space after the version"
	w.closeObject()
	if r.processName != "" {
		w.value("process_name", r.processName)
	}
	w.openArray("threads")
	for _, th := range r.threads {
		w.openObject("")
		crashed := th.tid == r.crashTID
		if r.legacy {
			crashed = th.excObject != 0 || th.tid == r.crashTID
		}
		w.valueBool("is_managed", th.managed)
		w.valueBool("crashed", crashed)
		if th.excObject != 0 {
			w.value64("managed_exception_object", th.excObject)
		}
		if th.excType != "" {
			w.value("managed_exception_type", th.excType)
		}
		if th.hresult != 0 {
			w.value32("managed_exception_hresult", th.hresult)
		}
		w.value64("native_thread_id", th.tid)
		w.openObject("ctx")
		w.value64("IP", th.ip)
		w.value64("SP", th.sp)
		w.value64("BP", th.sp+0x40)
		w.closeObject()
		key := "stack_frames"
		if r.legacy {
			key = "unmanaged_frames"
		}
		w.openArray(key)
		for i, f := range th.frames {
			if th.repeated > 0 && i == th.repeatBegin {
				w.openObject("")
				w.value32("repeated", th.repeated)
				w.openArray("repeated_frames")
			}
			if th.repeated > 0 && i == th.repeatEnd {
				w.closeArray()
				w.closeObject()
			}
			w.frame(f)
		}
		w.closeArray()
		w.closeObject()
	}
	w.closeArray()
	w.closeObject()
	w.closeWriter()
	return w
}

// frame is CrashReportWriter::WriteStackFrame.
func (w *crWriter) frame(f fxFrame) {
	w.openObject("")
	w.valueBool("is_managed", f.managed)
	w.value64("module_address", f.moduleAddr)
	w.value64("stack_pointer", f.sp)
	w.value64("native_address", f.ip)
	w.value64("native_offset", f.nativeOffset)
	if f.managed {
		w.value32("token", f.token)
		w.value32("il_offset", f.ilOffset)
	}
	if f.method != "" {
		w.value("method_name", f.method)
	}
	if f.moduleAddr != 0 && f.module != nil {
		if f.managed {
			w.value32("timestamp", f.module.timestamp)
			w.value32("sizeofimage", f.module.size)
			w.value("filename", f.module.name)
			w.value("guid", f.module.guid)
		} else {
			if f.symbol != "" {
				w.value("unmanaged_name", f.symbol)
			}
			w.value("native_module", f.module.name)
		}
	}
	w.closeObject()
}
