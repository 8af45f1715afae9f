// Command heaphog is the helper process of `make bench-perf`: it builds about
// -size bytes of heap shaped like a managed runtime's (a web service's live
// objects: many small structs linked by pointers, with strings, JSON-ish
// request bodies and log lines, some numeric arrays, maps, a few random
// buffers and some never-touched zeroed buffers), prints "ready" and waits
// to be dumped with gcore and killed. The mix is calibrated so that the core
// compresses about like the real 745 MB gcore of a Python service measured
// in issue 7 (14 % with `zstd -1`).
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// Shares of the heap by kind (fractions of -size).
const (
	shareObjects = 0.25 // sessions, users, headers, tags, bodies
	shareLogs    = 0.08 // log lines
	shareNumbers = 0.07 // counters, histograms
	shareIndex   = 0.04 // map[string]*session
	shareRandom  = 0.06 // encrypted/compressed payloads
	shareZero    = 0.50 // pre-allocated, never used buffers; freed pools
)

var (
	words = strings.Fields(`order customer invoice payment account product catalog cart checkout shipping
address region tenant user session token request response handler service client server cache queue
worker job task event stream batch record entry item price amount currency total discount tax status
pending active closed failed retry timeout deadline created updated deleted version schema metadata
label annotation namespace deployment replica container image node cluster zone endpoint route path
query filter sort page limit offset cursor count index key value name email phone city country street`)
	firstNames = strings.Fields(`alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil trent victor walter yolanda`)
	domains    = strings.Fields(`example.com example.org mail.example.net corp.example shop.example.io`)
	methods    = strings.Fields(`GET GET GET POST POST PUT DELETE PATCH`)
	levels     = strings.Fields(`INFO INFO INFO INFO DEBUG DEBUG WARN ERROR`)
	hdrNames   = strings.Fields(`Accept Accept-Encoding Authorization Content-Type Content-Length User-Agent X-Request-Id X-Forwarded-For Cookie Cache-Control`)
	statuses   = []int{200, 200, 200, 200, 201, 204, 301, 400, 404, 500, 503}
)

type header struct{ name, value string }

type user struct {
	id          int64
	name, email string
	roles       []string
	created     int64
	manager     *user
}

type session struct {
	id       int64
	user     *user
	created  int64
	method   string
	path     string
	headers  []header
	body     string
	tags     []string
	status   int32
	latency  float64
	next     *session
	counters [6]int32
}

type heap struct {
	users    []*user
	sessions []*session
	logs     []string
	counters [][]int64
	hist     [][]float64
	index    map[string]*session
	random   [][]byte
	zero     [][]byte
}

// keep holds everything so that nothing is collected.
var keep *heap

// gen makes values the way real traffic does: a few hot words, IDs and
// paths account for most of them (Zipf), with a long tail.
type gen struct {
	r    *rand.Rand
	word *rand.Zipf
	id   *rand.Zipf
	b    strings.Builder
}

func newGen(seed uint64) *gen {
	r := rand.New(rand.NewPCG(seed, 1))
	return &gen{r: r, word: rand.NewZipf(r, 1.5, 2, 1<<20), id: rand.NewZipf(r, 1.4, 4, 1e6)}
}

// pick chooses from s, favouring its first entries.
func (g *gen) pick(s []string) string { return s[int(g.word.Uint64())%len(s)] }

// num is a skewed number below n: hot IDs, small counts.
func (g *gen) num(n int) int { return int(g.id.Uint64()) % n }

func (g *gen) hex(n int) string {
	const digits = "0123456789abcdef"
	var buf [64]byte
	for i := range n {
		buf[i] = digits[g.r.IntN(16)]
	}
	return string(buf[:n])
}

func (g *gen) path() string {
	g.b.Reset()
	g.b.WriteString("/api/v1/")
	g.b.WriteString(g.pick(words))
	g.b.WriteString("s/")
	g.b.WriteString(strconv.Itoa(g.num(100000)))
	if g.r.IntN(3) == 0 {
		g.b.WriteByte('/')
		g.b.WriteString(g.pick(words))
	}
	return g.b.String()
}

// body is a JSON-ish request body: a few fields from a small vocabulary.
func (g *gen) body() string {
	g.b.Reset()
	g.b.WriteString(`{"`)
	n := 3 + g.r.IntN(8)
	for i := range n {
		if i > 0 {
			g.b.WriteString(`,"`)
		}
		g.b.WriteString(g.pick(words))
		g.b.WriteString(`":`)
		switch g.r.IntN(5) {
		case 0:
			g.b.WriteString(strconv.Itoa(g.num(1000)))
		case 1:
			g.b.WriteString(`"`)
			g.b.WriteString(g.pick(words))
			g.b.WriteString(`"`)
		case 2:
			g.b.WriteString(`true`)
		case 3:
			g.b.WriteString(`"` + g.pick(firstNames) + `@` + g.pick(domains) + `"`)
		default:
			g.b.WriteString(`["` + g.pick(words) + `","` + g.pick(words) + `"]`)
		}
	}
	g.b.WriteString("}")
	return g.b.String()
}

func (g *gen) logLine(t int64) string {
	g.b.Reset()
	g.b.WriteString("2026-03-14T09:")
	g.b.WriteString(strconv.Itoa(10 + int(t/60000)%50))
	g.b.WriteString(":")
	g.b.WriteString(strconv.Itoa(10 + int(t/1000)%50))
	g.b.WriteString(".")
	g.b.WriteString(strconv.Itoa(100 + int(t%900)))
	g.b.WriteString("Z ")
	g.b.WriteString(g.pick(levels))
	g.b.WriteString(" [worker-")
	g.b.WriteString(strconv.Itoa(g.r.IntN(16)))
	g.b.WriteString("] ")
	g.b.WriteString(g.pick(methods))
	g.b.WriteString(" ")
	g.b.WriteString(g.path())
	g.b.WriteString(" status=")
	g.b.WriteString(strconv.Itoa(statuses[g.r.IntN(len(statuses))]))
	g.b.WriteString(" dur=")
	g.b.WriteString(strconv.Itoa(g.num(500)))
	g.b.WriteString("ms ")
	g.b.WriteString(g.pick(words))
	g.b.WriteString("=")
	g.b.WriteString(g.pick(words))
	if g.r.IntN(8) == 0 {
		g.b.WriteString(" trace=")
		g.b.WriteString(g.hex(8))
	}
	return g.b.String()
}

func main() {
	size := flag.Int64("size", 1<<30, "approximate heap to build, in bytes")
	seed := flag.Uint64("seed", 7, "random seed (the heap is reproducible)")
	flag.Parse()
	debug.SetGCPercent(400)
	g := newGen(*seed)
	h := &heap{index: map[string]*session{}}
	keep = h
	budget := func(share float64) int64 { return int64(float64(*size) * share) }
	used := func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}

	// Users: shared by many sessions (pointers into a common set).
	for i := range 20000 {
		fn := g.pick(firstNames)
		u := &user{id: int64(100000 + i), name: fn + "_" + strconv.Itoa(i),
			email: fn + strconv.Itoa(i) + "@" + g.pick(domains), created: 1700000000 + int64(g.r.IntN(1e7))}
		u.roles = []string{g.pick([]string{"admin", "viewer", "editor", "owner"})}
		if i > 0 {
			u.manager = h.users[g.r.IntN(i)]
		}
		h.users = append(h.users, u)
	}
	// Sessions and the index over part of them.
	start := used()
	var prev *session
	for t := int64(0); used()-start < budget(shareObjects); {
		for range 2000 {
			t += int64(g.r.IntN(50))
			s := &session{id: t, user: h.users[g.r.IntN(len(h.users))], created: 1773480000000 + t,
				method: g.pick(methods), path: g.path(), status: int32(statuses[g.r.IntN(len(statuses))]),
				latency: float64(g.num(5000)) / 10, next: prev}
			nh := 3 + g.r.IntN(5)
			s.headers = make([]header, nh)
			for i := range s.headers {
				name := g.pick(hdrNames)
				var v string
				switch name {
				case "X-Request-Id":
					if g.r.IntN(4) == 0 {
						v = g.hex(16)
					} else {
						v = "-"
					}
				case "Content-Length":
					v = strconv.Itoa(g.num(10000))
				default:
					v = g.pick(words) + "/" + g.pick(words)
				}
				s.headers[i] = header{name, v}
			}
			if g.r.IntN(2) == 0 {
				s.body = g.body()
			}
			s.tags = []string{g.pick(words), g.pick(words)}
			s.counters[0] = int32(g.num(10))
			h.sessions = append(h.sessions, s)
			prev = s
		}
	}
	start = used()
	for len(h.index) == 0 || used()-start < budget(shareIndex) {
		for range 1000 {
			s := h.sessions[g.r.IntN(len(h.sessions))]
			h.index[strconv.FormatInt(s.id, 36)+"-"+g.pick(words)] = s
		}
	}
	// Log lines (a ring buffer of recent lines, as loggers keep).
	start = used()
	for t := int64(0); used()-start < budget(shareLogs); {
		for range 2000 {
			t += int64(g.r.IntN(40))
			h.logs = append(h.logs, g.logLine(t))
		}
	}
	// Numbers: counters with small values, histograms with coarse values.
	for n := int64(0); n < budget(shareNumbers); n += 2 * 8 * 4096 {
		c := make([]int64, 4096)
		for i := range c {
			c[i] = int64(g.num(1 << 20))
		}
		f := make([]float64, 4096)
		for i := range f {
			f[i] = float64(g.num(2000)) / 4
		}
		h.counters, h.hist = append(h.counters, c), append(h.hist, f)
	}
	// Random payloads (TLS records, compressed blobs).
	for n := int64(0); n < budget(shareRandom); n += 64 << 10 {
		b := make([]byte, 64<<10)
		for i := 0; i < len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], g.r.Uint64())
		}
		h.random = append(h.random, b)
	}
	// Buffers allocated for pools and never written.
	for n := int64(0); n < budget(shareZero); n += 1 << 20 {
		h.zero = append(h.zero, make([]byte, 1<<20))
	}
	runtime.GC()
	skipped := dontDumpReservations()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("ready heap_alloc=%d heap_sys=%d sys=%d sessions=%d logs=%d dontdump=%d\n",
		ms.HeapAlloc, ms.HeapSys, ms.Sys, len(h.sessions), len(h.logs), skipped)
	os.Stdout.Sync()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	runtime.KeepAlive(keep)
}

// dontDumpReservations marks the Go runtime's address-space reservations
// (anonymous PROT_NONE mappings, about 1.2 GB that are never touched)
// MADV_DONTDUMP and returns their total size. The kernel's own core writer
// leaves never-written mappings out, and so do the runtimes' dumpers
// (createdump writes committed memory only), but gcore would write them as
// zeros: without this the core of a 1 GiB Go heap is 2.3 GB, half of it
// zeros, which is not what the node sees from the runtimes we serve.
func dontDumpReservations() int64 {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	type span struct{ lo, hi uintptr }
	var spans []span
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// address perms offset dev inode [path]
		if len(fs) != 5 || fs[1] != "---p" || fs[4] != "0" {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			spans = append(spans, span{uintptr(l), uintptr(h)})
		}
	}
	var total int64
	for _, s := range spans {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, s.lo, s.hi-s.lo, madvDontDump); e == 0 {
			total += int64(s.hi - s.lo)
		}
	}
	return total
}

const madvDontDump = 16 // MADV_DONTDUMP
