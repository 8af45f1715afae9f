package identify

import (
	"strings"

	"github.com/crashdump-io/crashdump/collector/pods"
)

// pathResult is what the dump's directory says.
type pathResult struct {
	ns, name string    // validated names from the path
	pod      *pods.Pod // the pod they name, when the pod list knows it
}

// path applies method path (see the package documentation for the
// layouts).
func (s *resolution) path() pathResult {
	d := dirs(s.ev.Path)
	if len(d) == 0 {
		s.note("path: the dump is not in a namespace or pod directory")
		return pathResult{}
	}
	first := d[0]
	if isUIDShaped(first) {
		if p, ok := s.snap.ByUID(first); ok {
			return pathResult{ns: p.Namespace, name: p.Name, pod: p}
		}
	}
	if !isNamespace(first) {
		s.note("path: directory %q is not a namespace name", printable(first))
		return pathResult{}
	}
	ns := first
	if len(d) < 2 {
		return pathResult{ns: ns}
	}
	name := d[1]
	if !isPodName(name) {
		s.note("path: directory %q is not a pod name", printable(name))
		return pathResult{ns: ns}
	}
	if !s.haveList() {
		// --pod-source none (or no list yet): the path alone, validated.
		if s.r.pods == nil {
			s.note("path: no pod list; namespace and pod from the path alone")
		} else {
			s.note("path: namespace and pod from the path alone, unchecked")
		}
		return pathResult{ns: ns, name: name}
	}
	cands := s.existedAtClaim(s.snap.ByName(ns, name))
	switch len(cands) {
	case 0:
		s.note("path: no pod %s/%s known on this node", ns, name)
		return pathResult{ns: ns}
	case 1:
		return pathResult{ns: ns, name: name, pod: cands[0]}
	}
	s.note("path: %d pods named %s/%s (recreated); uid not determined", len(cands), ns, name)
	return pathResult{ns: ns, name: name}
}

// hostResult is what the file name says.
type hostResult struct {
	ns, name   string
	pod        *pods.Pod
	candidates []*pods.Pod
}

// hostname applies method hostname: a known pod's host name as a whole
// token of the file name, within namespace ns if it is not "".
func (s *resolution) hostname(ns string) hostResult {
	if !s.haveList() {
		return hostResult{}
	}
	base := s.ev.Path[strings.LastIndexByte(s.ev.Path, '/')+1:]
	pool := s.snap.Pods()
	if ns != "" {
		pool = s.snap.InNamespace(ns)
	}
	var hits []*pods.Pod
	for _, p := range pool {
		if p.Hostname != "" && hasToken(base, p.Hostname) {
			hits = append(hits, p)
		}
	}
	hits = s.existedAtClaim(hits)
	switch {
	case len(hits) == 0:
		s.note("hostname: no pod's host name in the file name")
		return hostResult{}
	case len(hits) == 1:
		return hostResult{ns: hits[0].Namespace, name: hits[0].Name, pod: hits[0]}
	}
	same := true
	for _, p := range hits[1:] {
		if p.Namespace != hits[0].Namespace || p.Name != hits[0].Name {
			same = false
		}
	}
	if same {
		s.note("hostname: %d pods named %s (recreated); uid not determined", len(hits), hits[0].Key())
		return hostResult{ns: hits[0].Namespace, name: hits[0].Name}
	}
	s.note("hostname: the file name matches %d pods", len(hits))
	return hostResult{candidates: hits}
}

// hasToken reports whether tok occurs in s with no letter or digit right
// before or after it.
func hasToken(s, tok string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], tok)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(tok)
		if (start == 0 || !isAlnum(s[start-1])) && (end == len(s) || !isAlnum(s[end])) {
			return true
		}
		i = start + 1
	}
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// printable bounds and cleans a directory name for a message: the pod
// chose it.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
