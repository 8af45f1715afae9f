package procfs

import "strings"

// Cgroup is what a process's cgroup path says about the pod and container
// it runs in. All fields are empty when the path names no pod.
type Cgroup struct {
	ContainerID string // 64 lowercase hex, "" if the process is in no container of the pod
	Runtime     string // "containerd", "cri-o", "docker", or "" when the path does not say (cgroupfs driver)
	PodUID      string // canonical 8-4-4-4-12 with dashes, "" if not a pod (or a static pod, see StaticPodUID)
	// StaticPodUID is set instead of PodUID for static pods, whose UID the
	// kubelet derives from the manifest hash: 32 lowercase hex without
	// dashes (the pod's kubernetes.io/config.hash annotation). It is never
	// reformatted into UUID form, which would name no pod.
	StaticPodUID string
	QOSClass     string // "guaranteed", "burstable", "besteffort", "" unknown
}

// Runtime names, as in the scheme of a container status's containerID
// ("containerd://<id>").
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
)

// QoS classes in the lower case the kubelet uses in cgroup names.
const (
	QOSGuaranteed = "guaranteed"
	QOSBurstable  = "burstable"
	QOSBestEffort = "besteffort"
)

// ParseCgroup parses the contents of /proc/<pid>/cgroup: cgroup v1 (one
// "<id>:<controllers>:<path>" line per hierarchy), v2 (a single "0::<path>")
// or hybrid (both). ok is true when a line names a Kubernetes pod. When lines
// disagree the v2 line wins if it names a pod, else the first v1 line that
// does. Lines it does not understand are ignored. Safe for concurrent use.
//
// The kubelet and the runtime choose every path element that is read here;
// a process can only add cgroups below its own, which is why the first pod
// element from the root is the one that counts.
func ParseCgroup(data []byte) (Cgroup, bool) {
	var first Cgroup
	haveFirst := false
	rest := string(data)
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		hierarchy, after, ok := strings.Cut(line, ":")
		if !ok || !isDigits(hierarchy) {
			continue
		}
		// The path may itself contain ':' (containerd's "slice:prefix:id").
		controllers, path, ok := strings.Cut(after, ":")
		if !ok {
			continue
		}
		cg, ok := parseCgroupPath(path)
		if !ok {
			continue
		}
		if hierarchy == "0" && controllers == "" {
			return cg, true // the unified (v2) hierarchy
		}
		if !haveFirst {
			first, haveFirst = cg, true
		}
	}
	return first, haveFirst
}

// parseCgroupPath finds the pod element of a cgroup path and the container
// element right below it.
//
// Paths may carry anything above the pod: the node container of kind or k3d
// ("/docker/<id>/kubepods/..."), the runtime's service
// ("/system.slice/containerd.service/..."), a --cgroup-root
// ("/kubelet.slice/kubelet-kubepods.slice/..."), or "/../.." when the reader
// is in another cgroup namespace than the process. And anything below the
// container: cgroups the container made for itself, CRI-O's ".../container".
func parseCgroupPath(path string) (Cgroup, bool) {
	if !strings.HasPrefix(path, "/") {
		return Cgroup{}, false
	}
	elems := strings.Split(path[1:], "/")
	for i, elem := range elems {
		var (
			cg     Cgroup
			inline string // containerd's "<slice>:<prefix>:<id>" names the container in the same element
			ok     bool
		)
		if strings.HasPrefix(elem, "pod") && !strings.Contains(elem, ".") {
			cg, ok = cgroupfsPod(elems[:i], elem)
		} else {
			cg, inline, ok = systemdPod(elem)
		}
		if !ok {
			continue
		}
		switch {
		case inline != "":
			cg.ContainerID, cg.Runtime, _ = inlineContainer(inline)
		case i+1 < len(elems):
			cg.ContainerID, cg.Runtime, _ = containerElem(elems[i+1])
		}
		return cg, true
	}
	return Cgroup{}, false
}

// cgroupfsPod parses a pod element of the cgroupfs driver (kubelet's
// CgroupName.ToCgroupfs): "pod<uid with dashes>", below "kubepods/burstable",
// "kubepods/besteffort" or, for Guaranteed pods, right below "kubepods".
// Without that parent the element is some other "pod..." cgroup, unless the
// parents are hidden behind ".." by a cgroup namespace.
func cgroupfsPod(parents []string, elem string) (Cgroup, bool) {
	var cg Cgroup
	if !podUID(&cg, elem[len("pod"):], '-') {
		return Cgroup{}, false
	}
	n := len(parents)
	parent := func(k int) string { // k-th parent, 1 = immediate
		if n-k < 0 {
			return ""
		}
		return parents[n-k]
	}
	switch p := parent(1); p {
	case QOSBurstable, QOSBestEffort:
		if gp := parent(2); gp != "kubepods" && gp != ".." {
			return Cgroup{}, false
		}
		cg.QOSClass = p
	case "kubepods":
		cg.QOSClass = QOSGuaranteed
	case "..":
		// The QoS parent is outside the reader's cgroup namespace.
	default:
		return Cgroup{}, false
	}
	return cg, true
}

// systemdPod parses a pod element of the systemd driver (kubelet's
// CgroupName.ToSystemd): the whole ancestry joined by '-', dashes inside
// names escaped to '_': "kubepods-burstable-pod<uid>.slice",
// "kubepods-besteffort-pod<uid>.slice", "kubepods-pod<uid>.slice"
// (Guaranteed), with any --cgroup-root in front ("kubelet-kubepods-...").
// containerd with SystemdCgroup on a host where systemd does not place it
// shows runc's "<slice>:<prefix>:<id>" form; the part after the slice is
// returned in inline.
func systemdPod(elem string) (cg Cgroup, inline string, ok bool) {
	slice := elem
	if i := strings.IndexByte(elem, ':'); i >= 0 {
		slice, inline = elem[:i], elem[i+1:]
	}
	base, isSlice := strings.CutSuffix(slice, ".slice")
	if !isSlice {
		return Cgroup{}, "", false
	}
	names := strings.Split(base, "-")
	n := len(names)
	last := names[n-1]
	if !strings.HasPrefix(last, "pod") || !podUID(&cg, last[len("pod"):], '_') {
		return Cgroup{}, "", false
	}
	k := n - 2
	if k >= 0 && (names[k] == QOSBurstable || names[k] == QOSBestEffort) {
		cg.QOSClass = names[k]
		k--
	} else {
		cg.QOSClass = QOSGuaranteed
	}
	if k < 0 || names[k] != "kubepods" {
		return Cgroup{}, "", false
	}
	return cg, inline, true
}

// podUID stores s, a pod UID as written in a cgroup name with sep between
// its groups, into cg: a UUID into PodUID in canonical form, a static pod's
// 32-hex config hash into StaticPodUID. It reports false for anything else.
func podUID(cg *Cgroup, s string, sep byte) bool {
	switch len(s) {
	case 36:
		var b [36]byte
		for i := 0; i < 36; i++ {
			c := s[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != sep {
					return false
				}
				c = '-'
			} else if !isLowerHex(c) {
				return false
			}
			b[i] = c
		}
		cg.PodUID = string(b[:])
		return true
	case 32:
		if !isHex(s) {
			return false
		}
		cg.StaticPodUID = s
		return true
	}
	return false
}

// containerElem parses the element below a pod: a container's cgroup.
//
//	cri-containerd-<id>.scope  containerd, systemd driver
//	crio-<id>.scope            CRI-O, systemd driver
//	crio-<id>                  CRI-O, cgroupfs driver
//	docker-<id>.scope          Docker (dockershim, cri-dockerd), systemd driver
//	<id>                       containerd or Docker, cgroupfs driver
//
// crio-conmon-<id>[.scope] holds CRI-O's monitor process, not the
// container, and yields no ID.
func containerElem(elem string) (id, runtime string, ok bool) {
	name, scope := strings.CutSuffix(elem, ".scope")
	switch {
	case strings.HasPrefix(name, "crio-conmon-"):
		return "", "", false
	case strings.HasPrefix(name, "cri-containerd-"):
		id, runtime = name[len("cri-containerd-"):], RuntimeContainerd
	case strings.HasPrefix(name, "crio-"):
		id, runtime = name[len("crio-"):], RuntimeCRIO
	case strings.HasPrefix(name, "docker-"):
		id, runtime = name[len("docker-"):], RuntimeDocker
	case scope:
		return "", "", false // a scope of something else
	default:
		id = name
	}
	if len(id) != 64 || !isHex(id) {
		return "", "", false
	}
	return id, runtime, true
}

// inlineContainer parses the "<prefix>:<id>" that follows a pod slice in
// runc's systemd path syntax, e.g. "cri-containerd:<id>".
func inlineContainer(s string) (id, runtime string, ok bool) {
	prefix, id, found := strings.Cut(s, ":")
	if !found {
		return "", "", false
	}
	switch prefix {
	case "cri-containerd":
		runtime = RuntimeContainerd
	case "crio":
		runtime = RuntimeCRIO
	case "docker":
		runtime = RuntimeDocker
	default:
		return "", "", false
	}
	if len(id) != 64 || !isHex(id) {
		return "", "", false
	}
	return id, runtime, true
}

func isLowerHex(c byte) bool { return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') }

// isHex reports whether s is non-empty lowercase hex.
func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
