package inspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// ErrNotCrashReport is returned by ParseCrashReport when nothing resembling
// a createdump crash report could be recovered from the input.
var ErrNotCrashReport = errors.New("inspect: not a .NET crash report")

// Limits applied by ParseCrashReport.
const (
	// MaxCrashReportSize is the most input ParseCrashReport looks at. Crash
	// reports list every thread's frames and reach a few hundred KiB for
	// large services; longer input is cut and parsed as a truncated file.
	MaxCrashReportSize = 8 << 20
	// MaxFrames caps CrashReport.CrashedThreadFrames.
	MaxFrames = 32

	// maxReportDepth bounds the nesting the parsers track. The writer nests
	// at most 8 levels deep (root, payload, threads, thread, stack_frames,
	// repeat wrapper, repeated_frames, frame).
	maxReportDepth = 64
)

// CrashReport summarises the <dump>.crashreport.json that the .NET runtime's
// createdump writes when DOTNET_EnableCrashReport=1.
type CrashReport struct {
	// ExceptionType is the crashed thread's managed_exception_type, "" when
	// no thread is marked crashed or it crashed without a managed exception.
	ExceptionType string `json:"exceptionType,omitempty"`
	// HResult is the crashed thread's managed_exception_hresult, as written
	// ("0x80131500").
	HResult        string `json:"hresult,omitempty"`
	ProcessName    string `json:"processName,omitempty"`
	RuntimeVersion string `json:"runtimeVersion,omitempty"`
	Architecture   string `json:"architecture,omitempty"`
	// CrashedThreadID is the crashed thread's native_thread_id ("0x1a2b").
	CrashedThreadID string `json:"crashedThreadId,omitempty"`
	// CrashedThreadIP and CrashedThreadSP are the crashed thread's ctx.IP
	// and ctx.SP as written ("0x7f3a…"): with the TID they name one thread
	// of one process, which is how a report is proven to belong to a core.
	CrashedThreadIP string `json:"crashedThreadIP,omitempty"`
	CrashedThreadSP string `json:"crashedThreadSP,omitempty"`
	// CrashedThreadFrames are the top MaxFrames frames of the crashed thread;
	// if no thread is marked crashed, of the first thread with a managed
	// exception, else of the first thread. Frames the writer grouped as
	// repeated (stack overflow) appear once each, in order.
	CrashedThreadFrames []Frame `json:"crashedThreadFrames,omitempty"`
	// Partial is set when the file was not valid JSON as written (createdump
	// does not escape strings) or was cut short, and the line-oriented
	// parser recovered what it could.
	Partial bool `json:"partial,omitempty"`
}

// Frame is one stack frame of a crash report.
type Frame struct {
	Managed      bool   `json:"managed"`
	Method       string `json:"method,omitempty"` // method_name or unmanaged_name
	Module       string `json:"module,omitempty"` // filename or native_module
	ILOffset     string `json:"ilOffset,omitempty"`
	NativeOffset string `json:"nativeOffset,omitempty"`
}

// ParseCrashReport extracts a CrashReport from the contents of a
// .crashreport.json file. At most MaxCrashReportSize bytes are examined.
//
// createdump writes every value without escaping, so a method name
// containing '"' or '\' makes the file invalid JSON, or valid JSON that
// means something else. The file is therefore decoded with encoding/json only
// when it contains no backslash; otherwise, or when decoding fails, a
// line-oriented parser that relies on the writer's one-item-per-line layout
// recovers what it can and the result is marked Partial.
func ParseCrashReport(data []byte) (*CrashReport, error) {
	capped := false
	if len(data) > MaxCrashReportSize {
		data = data[:MaxCrashReportSize]
		capped = true
	}
	if !capped && bytes.IndexByte(data, '\\') < 0 {
		var b reportBuilder
		if decodeJSONReport(data, &b) == nil {
			if rep := b.result(false); rep != nil {
				return rep, nil
			}
			return nil, ErrNotCrashReport
		}
	}
	var b reportBuilder
	parseReportLines(data, &b)
	if rep := b.result(true); rep != nil {
		return rep, nil
	}
	return nil, ErrNotCrashReport
}

// errIncompleteJSON reports JSON that ended before its top-level value did,
// or that had more than one.
var errIncompleteJSON = errors.New("incomplete JSON document")

// decodeJSONReport streams data through encoding/json's tokenizer into b, so
// that memory stays proportional to what b keeps rather than to the document.
func decodeJSONReport(data []byte, b *reportBuilder) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type level struct {
		object  bool
		wantKey bool
		key     string
	}
	var stack []level
	done := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if !done {
				return errIncompleteJSON
			}
			return nil
		}
		if err != nil {
			return err
		}
		if done {
			return errIncompleteJSON
		}
		// Inside an object, tokens alternate between member names and
		// values; the tokenizer has already checked the syntax.
		var key string
		if n := len(stack); n > 0 && stack[n-1].object {
			top := &stack[n-1]
			if d, ok := tok.(json.Delim); ok && d == '}' {
				// end of the object: neither a name nor a value
			} else if top.wantKey {
				s, ok := tok.(string)
				if !ok {
					return errIncompleteJSON
				}
				top.key, top.wantKey = s, false
				continue
			} else {
				key = top.key
				top.wantKey = true
			}
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				b.open(key, v == '[')
				stack = append(stack, level{object: v == '{', wantKey: true})
			case '}', ']':
				stack = stack[:len(stack)-1]
				b.close()
				done = len(stack) == 0
			}
		case string:
			b.value(key, []byte(v))
		case bool:
			if v {
				b.value(key, []byte("true"))
			} else {
				b.value(key, []byte("false"))
			}
		case json.Number:
			b.value(key, []byte(v))
		}
		if len(stack) == 0 {
			done = true
		}
	}
}

// parseReportLines is the tolerant parser. It relies on how createdump's
// JsonWriter lays out its output: one item per line, indented, where an item
// is `"key" : "value"`, `"key" : {`, `"key" : [`, a bare `{` (array element)
// or a closing `}` / `]`, and where the "," separating items ends the
// previous line. A value is everything between the quote after `" : ` and
// the last quote on the line, so unescaped quotes and backslashes inside it
// survive. Lines that fit none of these shapes (the torn last line of a
// truncated file, or a value that contained a newline) are skipped.
func parseReportLines(data []byte, b *reportBuilder) {
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimLeft(line, " \t")
		line = bytes.TrimRight(line, " \t\r")
		if len(line) == 0 {
			continue
		}
		switch line[0] {
		case '{', '[':
			if len(line) == 1 {
				b.open("", line[0] == '[')
			}
		case '}', ']':
			if len(line) == 1 || (len(line) == 2 && line[1] == ',') {
				b.close()
			}
		case '"':
			sep := bytes.Index(line, []byte(`" : `))
			if sep < 1 {
				continue
			}
			key := string(line[1:sep])
			rest := line[sep+len(`" : `):]
			switch {
			case len(rest) == 1 && (rest[0] == '{' || rest[0] == '['):
				b.open(key, rest[0] == '[')
			case len(rest) >= 2 && rest[0] == '"':
				if rest[len(rest)-1] == ',' {
					rest = rest[:len(rest)-1]
				}
				if len(rest) < 2 || rest[len(rest)-1] != '"' {
					continue
				}
				b.value(key, rest[1:len(rest)-1])
			}
		}
	}
}

// Roles of the containers the report builder tracks.
type reportRole uint8

const (
	roleOther reportRole = iota
	roleRoot
	rolePayload
	roleConfig
	roleThreads
	roleThread
	roleFrames // stack_frames, unmanaged_frames (older runtimes) or repeated_frames
	roleFrame  // a frame, or the object wrapping repeated frames
	roleCtx    // a thread's register context (IP, SP, BP)
)

type reportLevel struct {
	role      reportRole
	frame     Frame
	hasFields bool
}

type threadInfo struct {
	crashed       bool
	hasException  bool
	exceptionType string
	hresult       string
	tid           string
	ip, sp        string
	frames        []Frame
}

// reportBuilder turns the open/value/close events of either parser into a
// CrashReport. It keeps at most three threads (the first, the first with an
// exception and the first crashed), each with at most MaxFrames frames, so
// its memory does not grow with the report.
type reportBuilder struct {
	stack    []reportLevel
	overflow int // levels opened beyond maxReportDepth

	sawPayload     bool
	processName    string
	architecture   string
	runtimeVersion string

	cur                       *threadInfo
	first, withExc, crashedTh *threadInfo
}

func (b *reportBuilder) top() reportRole {
	if len(b.stack) == 0 {
		return roleOther
	}
	return b.stack[len(b.stack)-1].role
}

func (b *reportBuilder) open(key string, array bool) {
	if len(b.stack) >= maxReportDepth || b.overflow > 0 {
		b.overflow++
		return
	}
	role := roleOther
	switch {
	case len(b.stack) == 0:
		if !array {
			role = roleRoot
		}
	case b.top() == roleRoot && key == "payload" && !array:
		role = rolePayload
		b.sawPayload = true
	case b.top() == rolePayload && key == "configuration" && !array:
		role = roleConfig
	case b.top() == rolePayload && key == "threads" && array:
		role = roleThreads
	case b.top() == roleThreads && !array:
		role = roleThread
		b.finishThread()
		b.cur = &threadInfo{}
	case b.top() == roleThread && !array && key == "ctx":
		role = roleCtx
	case b.top() == roleThread && array && (key == "stack_frames" || key == "unmanaged_frames"):
		role = roleFrames
	case b.top() == roleFrames && !array:
		role = roleFrame
	case b.top() == roleFrame && array && key == "repeated_frames":
		role = roleFrames
	}
	b.stack = append(b.stack, reportLevel{role: role})
}

func (b *reportBuilder) close() {
	if b.overflow > 0 {
		b.overflow--
		return
	}
	if len(b.stack) == 0 {
		return
	}
	lvl := b.stack[len(b.stack)-1]
	b.stack = b.stack[:len(b.stack)-1]
	switch lvl.role {
	case roleFrame:
		if lvl.hasFields && b.cur != nil && len(b.cur.frames) < MaxFrames {
			b.cur.frames = append(b.cur.frames, lvl.frame)
		}
	case roleThread:
		b.finishThread()
	}
}

func (b *reportBuilder) value(key string, raw []byte) {
	if b.overflow > 0 || len(b.stack) == 0 {
		return
	}
	lvl := &b.stack[len(b.stack)-1]
	switch lvl.role {
	case rolePayload:
		if key == "process_name" && b.processName == "" {
			b.processName = cleanString(raw)
		}
	case roleConfig:
		switch key {
		case "architecture":
			b.architecture = cleanString(raw)
		case "version":
			b.runtimeVersion = strings.TrimSpace(cleanString(raw))
		}
	case roleThread:
		t := b.cur
		if t == nil {
			return
		}
		switch key {
		case "crashed":
			t.crashed = string(raw) == "true"
		case "managed_exception_object":
			t.hasException = true
		case "managed_exception_type":
			t.exceptionType = cleanString(raw)
			t.hasException = true
		case "managed_exception_hresult":
			t.hresult = cleanString(raw)
		case "native_thread_id":
			t.tid = cleanString(raw)
		}
	case roleCtx:
		if t := b.cur; t != nil {
			switch key {
			case "IP":
				t.ip = cleanString(raw)
			case "SP":
				t.sp = cleanString(raw)
			}
		}
	case roleFrame:
		if key == "crashed" || key == "native_thread_id" {
			// Only threads have these. The writer leaves a repeated-frames
			// block open when the repetition runs to the end of the stack,
			// which nests the following threads inside the previous one's
			// stack_frames; treat this object as the thread it is.
			lvl.role = roleThread
			b.finishThread()
			b.cur = &threadInfo{}
			b.value(key, raw)
			return
		}
		if b.cur == nil || len(b.cur.frames) >= MaxFrames {
			return
		}
		f := &lvl.frame
		switch key {
		case "is_managed":
			// Every object the writer puts in a frame list has it, so it
			// does not make this a frame on its own.
			f.Managed = string(raw) == "true"
			return
		case "method_name", "unmanaged_name":
			if f.Method == "" {
				f.Method = cleanString(raw)
			}
		case "filename", "native_module":
			if f.Module == "" {
				f.Module = cleanString(raw)
			}
		case "il_offset":
			f.ILOffset = cleanString(raw)
		case "native_offset":
			f.NativeOffset = cleanString(raw)
		default:
			return
		}
		lvl.hasFields = true
	}
}

// finishThread files the thread being built as a candidate for the summary.
func (b *reportBuilder) finishThread() {
	t := b.cur
	if t == nil {
		return
	}
	b.cur = nil
	if b.first == nil {
		b.first = t
	}
	if t.hasException && b.withExc == nil {
		b.withExc = t
	}
	if t.crashed && b.crashedTh == nil {
		b.crashedTh = t
	}
}

// result builds the summary, or returns nil if no payload was seen. Open
// containers (a truncated file) are closed first so that the thread being
// written when the writer died still counts.
func (b *reportBuilder) result(partial bool) *CrashReport {
	for len(b.stack) > 0 || b.overflow > 0 {
		b.close()
	}
	if !b.sawPayload {
		return nil
	}
	rep := &CrashReport{
		ProcessName:    b.processName,
		Architecture:   b.architecture,
		RuntimeVersion: b.runtimeVersion,
		Partial:        partial,
	}
	var t *threadInfo
	switch {
	case b.crashedTh != nil:
		t = b.crashedTh
		rep.ExceptionType = t.exceptionType
		rep.HResult = t.hresult
		rep.CrashedThreadID = t.tid
		rep.CrashedThreadIP, rep.CrashedThreadSP = t.ip, t.sp
	case b.withExc != nil:
		t = b.withExc
	default:
		t = b.first
	}
	if t != nil && len(t.frames) > 0 {
		rep.CrashedThreadFrames = append([]Frame(nil), t.frames...)
	}
	return rep
}
