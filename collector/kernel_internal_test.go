package collector

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector/corepipe"
)

// The policy snapshot says only what is certain about the node's pods.
func TestPodPolicy(t *testing.T) {
	now := time.Now()
	storms, err := loadStormLimiter(filepath.Join(t.TempDir(), "ratelimit.json"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"shop/loop/app", "shop/custom/app", "labelled/pod/app"} {
		storms.allow(k, 10, now)
	}
	a := &Agent{policy: Policy{MaxPerWindow: 1, Window: time.Hour}, storms: storms}
	ps := []NodePod{
		{Namespace: "shop", Name: "loop", UIDs: []string{"uid-loop"},
			Containers: []NodeContainer{{Name: "app", IDs: []string{"loop-new", "loop-old"}}, {Name: "side", IDs: []string{"side"}}}},
		{Namespace: "shop", Name: "quiet", UIDs: []string{"uid-quiet", "static-hash"}, Annotations: map[string]string{AnnotationCollect: "false"},
			Containers: []NodeContainer{{Name: "app", IDs: []string{"quiet"}}}},
		// Its own limit of 2 is not used up.
		{Namespace: "shop", Name: "custom", UIDs: []string{"uid-custom"}, Annotations: map[string]string{AnnotationMaxPerHour: "2"},
			Containers: []NodeContainer{{Name: "app", IDs: []string{"custom"}}}},
		// Its namespace's label may raise the limit: not judged here.
		{Namespace: "labelled", Name: "pod", UIDs: []string{"uid-labelled"}, NamespaceDefaults: true,
			Containers: []NodeContainer{{Name: "app", IDs: []string{"labelled"}}}},
	}
	var p corepipe.Policy
	a.podPolicy(&p, ps, now)
	if want := []string{"loop-new", "loop-old"}; !slices.Equal(p.LimitedContainers, want) {
		t.Errorf("limited %v, want %v", p.LimitedContainers, want)
	}
	if want := []string{"static-hash", "uid-quiet"}; !slices.Equal(p.OptedOutPodUIDs, want) {
		t.Errorf("opted out %v, want %v", p.OptedOutPodUIDs, want)
	}
	if len(p.PodNamespaces) != 5 || p.PodNamespaces["static-hash"] != "shop" || p.PodNamespaces["uid-labelled"] != "labelled" {
		t.Errorf("pod namespaces %v", p.PodNamespaces)
	}
}
