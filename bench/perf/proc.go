package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// usage is what one run of one or more processes cost.
type usage struct {
	WallS float64 `json:"wall_s"`
	// CPUS is user+system seconds of the measured processes (wait4 rusage).
	CPUS  float64 `json:"cpu_s"`
	UserS float64 `json:"user_s"`
	SysS  float64 `json:"sys_s"`
	// PeakRSS is the largest peak resident set of the measured processes:
	// the larger of wait4's ru_maxrss and VmHWM sampled from
	// /proc/<pid>/status every 10 ms until exit.
	PeakRSS int64 `json:"peak_rss_bytes"`
	// PeakAnon is the largest RssAnon seen by the 10 ms sampler (the
	// heap and stacks, without the executable's file pages), and
	// FileAtPeak the RssFile of that sample.
	PeakAnon   int64 `json:"peak_rss_anon_sampled_bytes"`
	FileAtPeak int64 `json:"rss_file_at_peak_anon_bytes"`
	// MinIOCPUS is the server's CPU seconds over the same interval, and
	// MinIOSysS the part of it spent in the kernel (where MinIO's writes
	// into the page cache are: the part that varies from run to run here).
	MinIOCPUS float64 `json:"minio_cpu_s"`
	MinIOSysS float64 `json:"minio_sys_s"`
}

// procCPU is utime+stime of pid (all threads) in seconds.
func procCPU(pid int) float64 {
	user, sys := procCPUSplit(pid)
	return user + sys
}

// procCPUSplit is utime and stime of pid (all threads) in seconds.
func procCPUSplit(pid int) (user, sys float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut) / clockTicks, float64(st) / clockTicks
}

// procSchedNS is the CPU time of every thread of pid in nanoseconds, from
// /proc/<pid>/task/*/schedstat (finer than clock ticks).
func procSchedNS(pid int) int64 {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			total += v
		}
	}
	return total
}

// memInfo is a process's memory from /proc/<pid>/status, in bytes.
type memInfo struct {
	RSS  int64 // VmRSS
	HWM  int64 // VmHWM: peak RSS
	Anon int64 // RssAnon: heap, stacks (what grows with the work)
	File int64 // RssFile: the executable's pages that were touched
}

// procMem reads pid's memory (zeros when gone).
func procMem(pid int) memInfo {
	var m memInfo
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = v << 10
		case "VmHWM:":
			m.HWM = v << 10
		case "RssAnon:":
			m.Anon = v << 10
		case "RssFile:":
			m.File = v << 10
		}
	}
	return m
}

// procStatus returns VmRSS and VmHWM of pid in bytes (0 when gone).
func procStatus(pid int) (rss, hwm int64) {
	m := procMem(pid)
	return m.RSS, m.HWM
}

// measure starts cmds together (a pipeline's stages, or one command), waits
// for all of them, and returns what they cost together: the wall time until
// the last exits, the sum of their CPU, and the largest peak RSS. The
// commands must be fully set up (stdio, env) and not started.
func measure(minioPID int, cmds ...*exec.Cmd) (usage, []error) {
	return measureNotify(minioPID, nil, cmds...)
}

// measureNotify is measure that closes started once every command started.
func measureNotify(minioPID int, started chan<- struct{}, cmds ...*exec.Cmd) (usage, []error) {
	var u usage
	minioUser0, minioSys0 := procCPUSplit(minioPID)
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
	for i, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			errs[i] = err
			continue
		}
		wg.Add(1)
		done := make(chan struct{})
		peak := make(chan memInfo, 1)
		go func() {
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			var top memInfo
			for {
				m := procMem(cmd.Process.Pid)
				top.HWM = max(top.HWM, m.HWM)
				if m.Anon > top.Anon {
					top.Anon, top.File = m.Anon, m.File
				}
				select {
				case <-done:
					peak <- top
					return
				case <-t.C:
				}
			}
		}()
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			close(done)
			top := <-peak
			mu.Lock()
			defer mu.Unlock()
			errs[i] = err
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				us := time.Duration(ru.Utime.Nano()).Seconds()
				ss := time.Duration(ru.Stime.Nano()).Seconds()
				u.UserS += us
				u.SysS += ss
				u.CPUS += us + ss
				u.PeakRSS = max(u.PeakRSS, ru.Maxrss<<10)
			}
			u.PeakRSS = max(u.PeakRSS, top.HWM)
			if top.Anon > u.PeakAnon {
				u.PeakAnon, u.FileAtPeak = top.Anon, top.File
			}
		}()
	}
	if started != nil {
		close(started)
	}
	wg.Wait()
	u.WallS = time.Since(start).Seconds()
	minioUser, minioSys := procCPUSplit(minioPID)
	u.MinIOCPUS = minioUser + minioSys - minioUser0 - minioSys0
	u.MinIOSysS = minioSys - minioSys0
	return u, errs
}
