package main

import (
	"encoding/json"
	"testing"
)

func TestCrashReportBytes(t *testing.T) {
	crashed := crashThread{
		IsManaged: true, Crashed: true,
		ManagedExceptionObject: 0x7f00, ManagedExceptionType: "System.Exception", ManagedExceptionHResult: 0x80131500,
		NativeThreadID: 1, IP: 0x10, SP: 0x20, BP: 0x30,
	}
	tests := []struct {
		name string
		r    crashReport
		want string
	}{
		{
			name: "crashed managed thread without frames",
			r:    crashReport{Architecture: "amd64", RuntimeVersion: "8.0.0", ProcessName: "app", Threads: []crashThread{crashed}},
			want: `{
 "payload" : {
  "protocol_version" : "1.0.0",
  "configuration" : {
   "architecture" : "amd64",
   "version" : "8.0.0 "
  },
  "process_name" : "app",
  "threads" : [
   {
    "is_managed" : "true",
    "crashed" : "true",
    "managed_exception_object" : "0x7f00",
    "managed_exception_type" : "System.Exception",
    "managed_exception_hresult" : "0x80131500",
    "native_thread_id" : "0x1",
    "ctx" : {
     "IP" : "0x10",
     "SP" : "0x20",
     "BP" : "0x30"
    },
    "stack_frames" : [

    ]
   }
  ]
 }
}
`,
		},
		{
			name: "managed and native frames, second thread, no process name",
			r: crashReport{Architecture: "arm64", RuntimeVersion: "9.0.1 @Commit: abc", Threads: []crashThread{
				{
					IsManaged: true, Crashed: true, ManagedExceptionType: "System.InvalidOperationException",
					NativeThreadID: 0x2a, IP: 0xABCDEF, SP: 0xFF, BP: 0,
					Frames: []stackFrame{
						{IsManaged: true, ModuleAddress: 0x1000, StackPointer: 0x2000, NativeAddress: 0x1010, NativeOffset: 0x10,
							Token: 0x6000001, ILOffset: 0, MethodName: "Program.Main(System.String[])",
							ModuleName: "app.dll", Timestamp: 0x1, SizeOfImage: 0x2000, GUID: "g"},
						{IsManaged: false, ModuleAddress: 0x3000, StackPointer: 0x2100, NativeAddress: 0x3333, NativeOffset: 0x333,
							Symbol: "abort", ModuleName: "libc.so.6"},
						{IsManaged: false, ModuleAddress: 0, StackPointer: 0x2200, NativeAddress: 0x4444, NativeOffset: 0},
					},
				},
				{IsManaged: false, NativeThreadID: 0x2b},
			}},
			want: `{
 "payload" : {
  "protocol_version" : "1.0.0",
  "configuration" : {
   "architecture" : "arm64",
   "version" : "9.0.1 @Commit: abc "
  },
  "threads" : [
   {
    "is_managed" : "true",
    "crashed" : "true",
    "managed_exception_type" : "System.InvalidOperationException",
    "native_thread_id" : "0x2a",
    "ctx" : {
     "IP" : "0xabcdef",
     "SP" : "0xff",
     "BP" : "0x0"
    },
    "stack_frames" : [
     {
      "is_managed" : "true",
      "module_address" : "0x1000",
      "stack_pointer" : "0x2000",
      "native_address" : "0x1010",
      "native_offset" : "0x10",
      "token" : "0x6000001",
      "il_offset" : "0x0",
      "method_name" : "Program.Main(System.String[])",
      "timestamp" : "0x1",
      "sizeofimage" : "0x2000",
      "filename" : "app.dll",
      "guid" : "g"
     },
     {
      "is_managed" : "false",
      "module_address" : "0x3000",
      "stack_pointer" : "0x2100",
      "native_address" : "0x3333",
      "native_offset" : "0x333",
      "unmanaged_name" : "abort",
      "native_module" : "libc.so.6"
     },
     {
      "is_managed" : "false",
      "module_address" : "0x0",
      "stack_pointer" : "0x2200",
      "native_address" : "0x4444",
      "native_offset" : "0x0"
     }
    ]
   },
   {
    "is_managed" : "false",
    "crashed" : "false",
    "native_thread_id" : "0x2b",
    "ctx" : {
     "IP" : "0x0",
     "SP" : "0x0",
     "BP" : "0x0"
    },
    "stack_frames" : [

    ]
   }
  ]
 }
}
`,
		},
		{
			name: "strings are not escaped",
			r: crashReport{Architecture: "amd64", RuntimeVersion: `8.0 "q"`, ProcessName: `C:\app`, Threads: []crashThread{
				{Crashed: true, ManagedExceptionType: `My"Odd\Exception`},
			}},
			want: `{
 "payload" : {
  "protocol_version" : "1.0.0",
  "configuration" : {
   "architecture" : "amd64",
   "version" : "8.0 "q" "
  },
  "process_name" : "C:\app",
  "threads" : [
   {
    "is_managed" : "false",
    "crashed" : "true",
    "managed_exception_type" : "My"Odd\Exception",
    "native_thread_id" : "0x0",
    "ctx" : {
     "IP" : "0x0",
     "SP" : "0x0",
     "BP" : "0x0"
    },
    "stack_frames" : [

    ]
   }
  ]
 }
}
`,
		},
		{
			name: "no threads",
			r:    crashReport{RuntimeVersion: "8.0.0"},
			want: `{
 "payload" : {
  "protocol_version" : "1.0.0",
  "configuration" : {
   "version" : "8.0.0 "
  },
  "threads" : [

  ]
 }
}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.r.render())
			if got != tt.want {
				t.Errorf("render mismatch\n--- got ---\n%s\n--- want ---\n%s", got, tt.want)
			}
		})
	}
}

// The report built from a live process is valid JSON in the shape consumers
// read (when no value contains a quote or backslash).
func TestBuiltReportShape(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	facts := gatherProcess(1)
	facts.pid, facts.tids = 1, []int{1, 7, 8}
	var doc struct {
		Payload struct {
			ProtocolVersion string `json:"protocol_version"`
			Configuration   struct {
				Architecture, Version string
			}
			ProcessName string `json:"process_name"`
			Threads     []map[string]any
		}
	}
	if err := json.Unmarshal(buildCrashReport(cfg, facts).render(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Payload.ProtocolVersion != "1.0.0" || len(doc.Payload.Threads) != 3 {
		t.Fatalf("unexpected report: %+v", doc)
	}
	th := doc.Payload.Threads[0]
	if th["crashed"] != "true" || th["managed_exception_type"] != "System.Exception" ||
		th["managed_exception_hresult"] != "0x80131500" || th["native_thread_id"] != "0x1" {
		t.Fatalf("crashed thread: %v", th)
	}
	if doc.Payload.Threads[1]["crashed"] != "false" {
		t.Fatalf("second thread: %v", doc.Payload.Threads[1])
	}
}
