// Package podstest gives tests what a node's Kubernetes side looks like:
// pods with the statuses a kubelet reports (built from client-go types, so
// the JSON is the real v1.PodList shape), a kubelet serving them over HTTPS
// with bearer-token checks, and an API server that lists them by node and
// records the Events posted to it. Everything listens on 127.0.0.1 only.
package podstest

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Container describes one container of a Pod and its status.
type Container struct {
	Name  string
	Image string // e.g. "registry.example.com/shop/api:1.4.2"
	// ID is the running instance, with its runtime scheme
	// ("containerd://<64 hex>"); "" for a container still waiting.
	ID string
	// LastID is the instance that ran before the last restart (it is in
	// lastState.terminated); "" if the container never restarted.
	LastID       string
	RestartCount int32
	// Exited: instance ID has ended with ExitCode (state terminated). With
	// BackOff too the kubelet waits to restart it, as in a crash loop: state
	// waiting, lastState the exit, containerID still ID.
	Exited, BackOff bool
	ExitCode        int32
	// LastExitCode is how LastID ended (default 139).
	LastExitCode int32
}

// Pod describes a pod as a kubelet would report it.
type Pod struct {
	Namespace, Name, UID string
	Node                 string
	Hostname             string // spec.hostname, usually ""
	Labels               map[string]string
	Annotations          map[string]string
	// OwnerKind and OwnerName set the controller reference
	// (ReplicaSet, StatefulSet, DaemonSet, Job, Node).
	OwnerKind, OwnerName string
	Init                 []Container
	Containers           []Container
	Ephemeral            []Container
	Created              time.Time
}

// Hex64 makes a deterministic 64-hex container ID from a seed.
func Hex64(seed string) string {
	const hexd = "0123456789abcdef"
	var b strings.Builder
	h := uint64(14695981039346656037)
	for b.Len() < 64 {
		for i := 0; i < len(seed); i++ {
			h ^= uint64(seed[i])
			h *= 1099511628211
		}
		h ^= uint64(b.Len())
		h *= 1099511628211
		b.WriteByte(hexd[h>>60])
	}
	return b.String()
}

// ImageID is a plausible repo digest for image.
func ImageID(image string) string {
	repo, _, _ := strings.Cut(image, ":")
	return repo + "@sha256:" + Hex64("image "+image)
}

// Core builds the corev1.Pod with a realistic Running status: conditions,
// IPs, QoS class, start times, container statuses with running state and,
// after a restart, the crashed instance in lastState.terminated (exit code
// 139, SIGSEGV, as a crash that wrote a dump leaves it).
func (p Pod) Core() corev1.Pod {
	created := p.Created
	if created.IsZero() {
		created = time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	}
	started := metav1.NewTime(created.Add(2 * time.Second))
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: types.UID(p.UID),
			ResourceVersion:   "48213",
			CreationTimestamp: metav1.NewTime(created),
			Labels:            p.Labels,
			Annotations: merge(map[string]string{
				"kubernetes.io/config.seen":   created.Format(time.RFC3339Nano),
				"kubernetes.io/config.source": "api",
			}, p.Annotations),
		},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node,
			Hostname:                      p.Hostname,
			RestartPolicy:                 corev1.RestartPolicyAlways,
			DNSPolicy:                     corev1.DNSClusterFirst,
			ServiceAccountName:            "default",
			SchedulerName:                 "default-scheduler",
			TerminationGracePeriodSeconds: ptr(int64(30)),
			Volumes: []corev1.Volume{{Name: "dumps", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "crash-dumps"}}}},
		},
		Status: corev1.PodStatus{
			Phase:     corev1.PodRunning,
			QOSClass:  corev1.PodQOSBurstable,
			HostIP:    "10.0.3.17",
			HostIPs:   []corev1.HostIP{{IP: "10.0.3.17"}},
			PodIP:     "10.244.1.23",
			PodIPs:    []corev1.PodIP{{IP: "10.244.1.23"}},
			StartTime: &started,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: started},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: started},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(created)},
			},
		},
	}
	if p.OwnerKind != "" {
		apiVersion := "apps/v1"
		switch p.OwnerKind {
		case "Job":
			apiVersion = "batch/v1"
		case "Node":
			apiVersion = "v1"
		}
		pod.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: apiVersion, Kind: p.OwnerKind, Name: p.OwnerName,
			UID: types.UID(uuidFrom("owner " + p.OwnerName)), Controller: ptr(true), BlockOwnerDeletion: ptr(true),
		}}
	}
	spec := func(c Container) corev1.Container {
		return corev1.Container{
			Name: c.Name, Image: c.Image, ImagePullPolicy: corev1.PullIfNotPresent,
			Env: []corev1.EnvVar{{Name: "DOTNET_DbgEnableMiniDump", Value: "1"}, {Name: "DOTNET_DbgMiniDumpName", Value: "/dumps/coredump.%p.dmp"}},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
			VolumeMounts:             []corev1.VolumeMount{{Name: "dumps", MountPath: "/dumps"}},
			TerminationMessagePath:   "/dev/termination-log",
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		}
	}
	status := func(c Container, init bool) corev1.ContainerStatus {
		s := corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: ImageID(c.Image),
			ContainerID: c.ID, RestartCount: c.RestartCount, Started: ptr(c.ID != ""), Ready: c.ID != "" && !init,
		}
		switch {
		case c.ID == "":
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container=" + c.Name}
		case c.Exited:
			t := &corev1.ContainerStateTerminated{ExitCode: c.ExitCode, Reason: "Error", ContainerID: c.ID,
				StartedAt: metav1.NewTime(started.Add(time.Minute)), FinishedAt: metav1.NewTime(started.Add(2 * time.Minute))}
			if c.BackOff {
				s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s restarting failed container=" + c.Name}
				s.LastTerminationState.Terminated = t
			} else {
				s.State.Terminated = t
			}
		case init:
			s.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", ContainerID: c.ID,
				StartedAt: started, FinishedAt: metav1.NewTime(started.Add(time.Second))}
		default:
			s.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started.Add(time.Minute))}
		}
		if c.LastID != "" {
			code := c.LastExitCode
			if code == 0 {
				code = 139
			}
			s.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
				ExitCode: code, Signal: 0, Reason: "Error", ContainerID: c.LastID,
				StartedAt: started, FinishedAt: metav1.NewTime(started.Add(50 * time.Second)),
			}
		}
		return s
	}
	for _, c := range p.Init {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, spec(c))
		pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, status(c, true))
	}
	for _, c := range p.Containers {
		pod.Spec.Containers = append(pod.Spec.Containers, spec(c))
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, status(c, false))
	}
	for _, c := range p.Ephemeral {
		pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name, Image: c.Image,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile}})
		pod.Status.EphemeralContainerStatuses = append(pod.Status.EphemeralContainerStatuses, status(c, false))
	}
	return pod
}

// List builds the v1.PodList a kubelet's /pods answers.
func List(pods ...Pod) corev1.PodList {
	l := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []corev1.Pod{}}
	for _, p := range pods {
		l.Items = append(l.Items, p.Core())
	}
	return l
}

// uuidFrom makes a deterministic UUID-shaped string.
func uuidFrom(seed string) string {
	h := Hex64(seed)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// UID makes a deterministic pod UID from a seed.
func UID(seed string) string { return uuidFrom("pod " + seed) }

func merge(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func ptr[T any](v T) *T { return &v }
