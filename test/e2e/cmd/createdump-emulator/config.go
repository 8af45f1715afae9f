package main

import (
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"
)

// dotnetEnv reads a runtime setting the way the runtime does: DOTNET_<name>
// first, then the legacy COMPlus_<name>.
func dotnetEnv(name string) (string, bool) {
	if v, ok := os.LookupEnv("DOTNET_" + name); ok {
		return v, true
	}
	return os.LookupEnv("COMPlus_" + name)
}

// dotnetFlag is true when the setting parses as the number 1 (the runtime
// reads these as DWORDs; anything else, including "true", leaves it off).
func dotnetFlag(name string) bool {
	v, ok := dotnetEnv(name)
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 0, 32)
	return err == nil && n == 1
}

// Dump types of DOTNET_DbgMiniDumpType.
const (
	dumpMini   = 1
	dumpHeap   = 2
	dumpTriage = 3
	dumpFull   = 4
)

var dumpTypeNames = map[int]string{
	dumpMini:   "minidump",
	dumpHeap:   "minidump with heap",
	dumpTriage: "triage minidump",
	dumpFull:   "full dump",
}

type config struct {
	EnableDump        bool
	DumpType          int
	DumpNamePattern   string
	CrashReport       bool
	CrashReportOnly   bool
	CrashAfter        time.Duration
	ExceptionType     string
	Message           string
	HResult           uint32
	RuntimeVersion    string
	DumpSize          uint64
	ChunkSize         int
	ChunkDelay        time.Duration
	HoldOpen          time.Duration
	Writer            string // child | self
	WaitForDump       bool
	Exit              string // abort | code:N
	ExitCode          int
	IgnoreTermSignals bool
}

const envPrefix = "CRASHDUMP_EMULATOR_"

func emuEnv(name, def string) string {
	if v, ok := os.LookupEnv(envPrefix + name); ok && v != "" {
		return v
	}
	return def
}

// defaultSizes scale with the dump type; FULL_SIZE sets the full dump size
// and DUMP_SIZE overrides every type.
var defaultSizes = map[int]uint64{
	dumpTriage: 1 << 20,
	dumpMini:   2 << 20,
	dumpHeap:   16 << 20,
	dumpFull:   64 << 20,
}

func loadConfig() (config, error) {
	c := config{
		EnableDump:      dotnetFlag("DbgEnableMiniDump"),
		DumpType:        dumpHeap, // createdump's default when the type is unset or invalid
		CrashReport:     dotnetFlag("EnableCrashReport"),
		CrashReportOnly: dotnetFlag("EnableCrashReportOnly"),
		ExceptionType:   emuEnv("EXCEPTION_TYPE", "System.Exception"),
		Message:         emuEnv("MESSAGE", "Boom!!"),
		RuntimeVersion:  emuEnv("RUNTIME_VERSION", "8.0.11 @Commit: 9cb3b725e3ad2b57ddc9fb2dd48d2d170563a8f5"),
		Writer:          emuEnv("WRITER", "child"),
		Exit:            emuEnv("EXIT", "abort"),
	}
	if v, ok := dotnetEnv("DbgMiniDumpType"); ok {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 0, 32); err == nil && n >= dumpMini && n <= dumpFull {
			c.DumpType = int(n)
		}
	}
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp/"
	}
	if !strings.HasSuffix(tmp, "/") {
		tmp += "/"
	}
	c.DumpNamePattern = tmp + "coredump.%p"
	if v, ok := dotnetEnv("DbgMiniDumpName"); ok && v != "" {
		c.DumpNamePattern = v
	}
	var err error
	if c.CrashAfter, err = parseDuration(emuEnv("CRASH_AFTER", "0")); err != nil {
		return c, fmt.Errorf("%sCRASH_AFTER: %v", envPrefix, err)
	}
	if v := emuEnv("CRASH_AT", ""); v != "" {
		// A wall-clock moment (Unix seconds, fractions allowed): pods started
		// at different times crash together. Wins over CRASH_AFTER.
		at, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, fmt.Errorf("%sCRASH_AT: want Unix seconds, got %q", envPrefix, v)
		}
		c.CrashAfter = max(time.Until(time.Unix(0, int64(at*1e9))), 0)
	}
	if c.ChunkDelay, err = parseDuration(emuEnv("CHUNK_DELAY", "20ms")); err != nil {
		return c, fmt.Errorf("%sCHUNK_DELAY: %v", envPrefix, err)
	}
	if c.HoldOpen, err = parseDuration(emuEnv("HOLD_OPEN", "0")); err != nil {
		return c, fmt.Errorf("%sHOLD_OPEN: %v", envPrefix, err)
	}
	hr, err := strconv.ParseUint(emuEnv("HRESULT", "0x80131500"), 0, 32)
	if err != nil {
		return c, fmt.Errorf("%sHRESULT: %v", envPrefix, err)
	}
	c.HResult = uint32(hr)
	chunk, err := parseSize(emuEnv("CHUNK_SIZE", "1MiB"))
	if err != nil || chunk == 0 || chunk > 64<<20 {
		return c, fmt.Errorf("%sCHUNK_SIZE: must be 1B..64MiB", envPrefix)
	}
	c.ChunkSize = int(chunk)
	sizes := maps.Clone(defaultSizes)
	if v := emuEnv("FULL_SIZE", ""); v != "" {
		n, err := parseSize(v)
		if err != nil {
			return c, fmt.Errorf("%sFULL_SIZE: %v", envPrefix, err)
		}
		sizes[dumpFull] = n
	}
	c.DumpSize = sizes[c.DumpType]
	if v := emuEnv("DUMP_SIZE", ""); v != "" {
		if c.DumpSize, err = parseSize(v); err != nil {
			return c, fmt.Errorf("%sDUMP_SIZE: %v", envPrefix, err)
		}
	}
	if v := emuEnv("WRITE_DURATION", ""); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return c, fmt.Errorf("%sWRITE_DURATION: %v", envPrefix, err)
		}
		chunks := (c.DumpSize + uint64(c.ChunkSize) - 1) / uint64(c.ChunkSize)
		c.ChunkDelay = d / time.Duration(max(chunks, 1))
	}
	switch c.Writer {
	case "child", "self":
	default:
		return c, fmt.Errorf("%sWRITER: child or self, got %q", envPrefix, c.Writer)
	}
	c.WaitForDump = emuEnv("WAIT_FOR_DUMP", "1") != "0"
	switch {
	case c.Exit == "abort":
	case strings.HasPrefix(c.Exit, "code:"):
		if c.ExitCode, err = strconv.Atoi(strings.TrimPrefix(c.Exit, "code:")); err != nil {
			return c, fmt.Errorf("%sEXIT: abort or code:N, got %q", envPrefix, c.Exit)
		}
	default:
		return c, fmt.Errorf("%sEXIT: abort or code:N, got %q", envPrefix, c.Exit)
	}
	return c, nil
}

// parseDuration takes Go durations ("1.5s", "200ms") or plain seconds ("3").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

// parseSize takes plain bytes or a number with a unit: B, KB/MB/GB (powers
// of 1000) or KiB/MiB/GiB (powers of 1024); K/M/G alone mean KiB/MiB/GiB.
func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("bad size unit in %q", s)
	}
	return uint64(n * mult), nil
}
