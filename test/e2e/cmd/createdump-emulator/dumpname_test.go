package main

import "testing"

func TestExpandDumpName(t *testing.T) {
	v := dumpNameVars{PID: 1, Exe: "crashapp", Hostname: "web-7d9f-abcde", Time: 1767225600}
	tests := []struct {
		pattern string
		want    string
		wantErr bool
	}{
		{"/dumps/coredump.%p.dmp", "/dumps/coredump.1.dmp", false},
		{"/tmp/coredump.%p", "/tmp/coredump.1", false},
		{"/dumps/%d", "/dumps/1", false},
		{"/dumps/%e-%h-%t.dmp", "/dumps/crashapp-web-7d9f-abcde-1767225600.dmp", false},
		{"/dumps/100%%-%p", "/dumps/100%-1", false},
		{"/dumps/%%p", "/dumps/%p", false},
		{"/dumps/%p%p", "/dumps/11", false},
		{"/dumps/plain", "/dumps/plain", false},
		{"", "", false},
		{"/dumps/trailing%", "/dumps/trailing", false}, // the runtime stops at a lone trailing '%'
		{"/dumps/%P", "", true},
		{"/dumps/%s", "", true},
		{"/dumps/%u.%g", "", true},
		{"/dumps/%E", "", true},
		{"/dumps/%x", "", true},
		{"|/usr/bin/handler %p", "", true},
	}
	for _, tt := range tests {
		got, err := expandDumpName(tt.pattern, v)
		if (err != nil) != tt.wantErr {
			t.Errorf("expandDumpName(%q) error = %v, wantErr %v", tt.pattern, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("expandDumpName(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

func TestExpandDumpNameOtherPID(t *testing.T) {
	got, err := expandDumpName("/dumps/coredump.%p.dmp", dumpNameVars{PID: 4242})
	if err != nil || got != "/dumps/coredump.4242.dmp" {
		t.Fatalf("got %q, %v", got, err)
	}
}
