package pods

import (
	"sort"
	"time"
)

// Snapshot is the pod list at one moment, with its indexes. It is never
// modified after it is published, so it is safe for concurrent use without
// locks; neither it nor the Pods it returns may be modified.
type Snapshot struct {
	// ListedAt is when the last successful list started: the snapshot
	// knows every pod that existed then. Zero if no list ever succeeded.
	ListedAt time.Time
	// Err is why the latest list failed, nil if it succeeded.
	Err error

	pods        []*Pod
	byUID       map[string]*Pod // UID and static pod config hash
	byContainer map[string]ContainerRef
	byName      map[string][]*Pod // "namespace/name"; several after a pod was recreated
	byNamespace map[string][]*Pod
}

// ContainerRef is one container instance and where it belongs.
type ContainerRef struct {
	Pod       *Pod
	Container *Container
	ID        ContainerID
}

func newSnapshot(pods []*Pod, listedAt time.Time) *Snapshot {
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		if pods[i].Name != pods[j].Name {
			return pods[i].Name < pods[j].Name
		}
		return pods[i].Created.Before(pods[j].Created)
	})
	s := &Snapshot{
		ListedAt:    listedAt,
		pods:        pods,
		byUID:       make(map[string]*Pod, len(pods)),
		byContainer: make(map[string]ContainerRef, 2*len(pods)),
		byName:      make(map[string][]*Pod, len(pods)),
		byNamespace: map[string][]*Pod{},
	}
	for _, p := range pods {
		s.byUID[p.UID] = p
		if p.StaticHash != "" {
			if _, taken := s.byUID[p.StaticHash]; !taken {
				s.byUID[p.StaticHash] = p
			}
		}
		s.byName[p.Key()] = append(s.byName[p.Key()], p)
		s.byNamespace[p.Namespace] = append(s.byNamespace[p.Namespace], p)
		for ci := range p.Containers {
			c := &p.Containers[ci]
			for _, id := range c.IDs {
				// Container IDs are random 256-bit values: one ID in two
				// pods means a garbled source, and then neither is trusted.
				if prev, dup := s.byContainer[id.ID]; dup && prev.Pod != p {
					s.byContainer[id.ID] = ContainerRef{}
					continue
				}
				s.byContainer[id.ID] = ContainerRef{Pod: p, Container: c, ID: id}
			}
		}
	}
	return s
}

// Loaded reports whether a list ever succeeded.
func (s *Snapshot) Loaded() bool { return s != nil && !s.ListedAt.IsZero() }

// Pods returns every known pod, listed and retained, sorted by namespace
// and name.
func (s *Snapshot) Pods() []*Pod {
	if s == nil {
		return nil
	}
	return s.pods
}

// ByUID finds a pod by UID, or a static pod by its config hash (the UID its
// cgroup names).
func (s *Snapshot) ByUID(uid string) (*Pod, bool) {
	if s == nil || uid == "" {
		return nil, false
	}
	p, ok := s.byUID[uid]
	return p, ok
}

// ByContainerID finds a container instance by its bare ID (as the cgroup
// names it) or its status form ("containerd://<id>").
func (s *Snapshot) ByContainerID(id string) (ContainerRef, bool) {
	if s == nil {
		return ContainerRef{}, false
	}
	_, bare, ok := SplitContainerID(id)
	if !ok {
		return ContainerRef{}, false
	}
	ref, ok := s.byContainer[bare]
	return ref, ok && ref.Pod != nil
}

// ByName returns the pods named namespace/name: usually one, several when a
// pod was deleted and created again under the same name (StatefulSets).
func (s *Snapshot) ByName(namespace, name string) []*Pod {
	if s == nil {
		return nil
	}
	return s.byName[namespace+"/"+name]
}

// InNamespace returns the known pods of a namespace.
func (s *Snapshot) InNamespace(namespace string) []*Pod {
	if s == nil {
		return nil
	}
	return s.byNamespace[namespace]
}
