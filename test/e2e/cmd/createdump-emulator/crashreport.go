package main

import (
	"fmt"
	"strings"
)

// jsonWriter reproduces, byte for byte, the JSON writer of createdump
// (src/coreclr/debug/createdump/crashreportwriter.cpp and jsonwriter.cpp in
// dotnet/runtime):
//
//   - the file starts with "{\n" and ends with "\n}\n";
//   - JSON_INDENT_VALUE is 1: one space per nesting level, the top level
//     members already indented by one;
//   - `"key" : "value"`, with " : " between key and value, and a
//     separator of ",\n" before every member but the first of a block;
//   - opening a block writes `"key" : {` (or `[`) and a newline; closing it
//     writes a newline, the indent and the marker;
//   - every scalar is a string: booleans are "true"/"false", numbers are
//     lower-case hex with a 0x prefix and no padding;
//   - strings are written as they are, with no escaping at all, so a quote
//     or backslash in a value makes the file invalid JSON, as it does with
//     the real runtime.
type jsonWriter struct {
	b      strings.Builder
	indent int
	comma  bool
}

const jsonIndentValue = 1

func newJSONWriter() *jsonWriter {
	w := &jsonWriter{indent: jsonIndentValue}
	w.b.WriteString("{\n")
	return w
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
	w.indent += jsonIndentValue
}

func (w *jsonWriter) close(marker byte) {
	w.b.WriteByte('\n')
	w.indent -= jsonIndentValue
	w.b.WriteString(strings.Repeat(" ", w.indent))
	w.b.WriteByte(marker)
	w.comma = true
}

func (w *jsonWriter) OpenObject(key string) { w.open(key, '{') }
func (w *jsonWriter) CloseObject()          { w.close('}') }
func (w *jsonWriter) OpenArray(key string)  { w.open(key, '[') }
func (w *jsonWriter) CloseArray()           { w.close(']') }

func (w *jsonWriter) Value(key, value string) {
	w.sep()
	w.b.WriteString(`"` + key + `" : "` + value + `"`)
	w.comma = true
}

func (w *jsonWriter) Bool(key string, v bool) {
	if v {
		w.Value(key, "true")
	} else {
		w.Value(key, "false")
	}
}

func (w *jsonWriter) Hex32(key string, v uint32) { w.Value(key, fmt.Sprintf("0x%x", v)) }
func (w *jsonWriter) Hex64(key string, v uint64) { w.Value(key, fmt.Sprintf("0x%x", v)) }

// Bytes closes the document and returns it.
func (w *jsonWriter) Bytes() []byte {
	w.b.WriteString("\n}\n")
	return []byte(w.b.String())
}

// crashReport is what createdump knows when it writes the report.
type crashReport struct {
	Architecture   string // amd64, arm64, arm
	RuntimeVersion string // e.g. "8.0.11 @Commit: ..."; the writer appends the trailing space the analyzers need
	ProcessName    string // file name of the main module; omitted when empty
	Threads        []crashThread
}

type crashThread struct {
	IsManaged               bool
	Crashed                 bool
	ManagedExceptionObject  uint64 // omitted when 0
	ManagedExceptionType    string // omitted when empty
	ManagedExceptionHResult uint32 // omitted when 0
	NativeThreadID          uint64
	IP, SP, BP              uint64
	Frames                  []stackFrame
}

type stackFrame struct {
	IsManaged     bool
	ModuleAddress uint64
	StackPointer  uint64
	NativeAddress uint64
	NativeOffset  uint64
	Token         uint32 // managed frames only
	ILOffset      uint32 // managed frames only
	MethodName    string // omitted when empty
	// Module facts, written only when ModuleAddress != 0 and a module name is known.
	ModuleName  string
	Timestamp   uint32 // managed
	SizeOfImage uint32 // managed
	GUID        string // managed
	Symbol      string // native: unmanaged_name, omitted when empty
}

// render returns the report exactly as createdump writes it on Linux.
func (r crashReport) render() []byte {
	w := newJSONWriter()
	w.OpenObject("payload")
	w.Value("protocol_version", "1.0.0")
	w.OpenObject("configuration")
	if r.Architecture != "" {
		w.Value("architecture", r.Architecture)
	}
	w.Value("version", r.RuntimeVersion+" ")
	w.CloseObject() // configuration
	if r.ProcessName != "" {
		w.Value("process_name", r.ProcessName)
	}
	w.OpenArray("threads")
	for _, t := range r.Threads {
		w.OpenObject("")
		w.Bool("is_managed", t.IsManaged)
		w.Bool("crashed", t.Crashed)
		if t.ManagedExceptionObject != 0 {
			w.Hex64("managed_exception_object", t.ManagedExceptionObject)
		}
		if t.ManagedExceptionType != "" {
			w.Value("managed_exception_type", t.ManagedExceptionType)
		}
		if t.ManagedExceptionHResult != 0 {
			w.Hex32("managed_exception_hresult", t.ManagedExceptionHResult)
		}
		w.Hex64("native_thread_id", t.NativeThreadID)
		w.OpenObject("ctx")
		w.Hex64("IP", t.IP)
		w.Hex64("SP", t.SP)
		w.Hex64("BP", t.BP)
		w.CloseObject() // ctx
		w.OpenArray("stack_frames")
		for _, f := range t.Frames {
			writeFrame(w, f)
		}
		w.CloseArray() // stack_frames
		w.CloseObject()
	}
	w.CloseArray()  // threads
	w.CloseObject() // payload
	return w.Bytes()
}

func writeFrame(w *jsonWriter, f stackFrame) {
	w.OpenObject("")
	w.Bool("is_managed", f.IsManaged)
	w.Hex64("module_address", f.ModuleAddress)
	w.Hex64("stack_pointer", f.StackPointer)
	w.Hex64("native_address", f.NativeAddress)
	w.Hex64("native_offset", f.NativeOffset)
	if f.IsManaged {
		w.Hex32("token", f.Token)
		w.Hex32("il_offset", f.ILOffset)
	}
	if f.MethodName != "" {
		w.Value("method_name", f.MethodName)
	}
	if f.ModuleAddress != 0 && f.ModuleName != "" {
		if f.IsManaged {
			w.Hex32("timestamp", f.Timestamp)
			w.Hex32("sizeofimage", f.SizeOfImage)
			w.Value("filename", f.ModuleName)
			w.Value("guid", f.GUID)
		} else {
			if f.Symbol != "" {
				w.Value("unmanaged_name", f.Symbol)
			}
			w.Value("native_module", f.ModuleName)
		}
	}
	w.CloseObject()
}
