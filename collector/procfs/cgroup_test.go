package procfs

import (
	"strings"
	"testing"
)

// Every sample below is real output (or, where marked, built from the
// source that writes it), with its origin in a comment.
func TestParseCgroup(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Cgroup
		ok   bool
	}{
		{
			// Real output from a node (task brief): cgroupfs driver,
			// containerd, BestEffort pod, hybrid v1+v2. The kubelet lists the
			// container as containerd://ecbe…df91; cgroupfs paths do not
			// say which runtime made them.
			name: "cgroupfs containerd besteffort hybrid",
			data: "9:name=systemd:/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n" +
				"4:memory:/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n" +
				"0::/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n",
			want: Cgroup{ContainerID: "ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91", PodUID: "e0bbe063-7fb9-4e56-84d7-99e74c5bd62b", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			// gitpod-io/gitpod PR #8243: cgroup v1, cgroupfs, Burstable.
			name: "cgroupfs v1 burstable",
			data: "12:rdma:/\n" +
				"11:pids:/kubepods/burstable/pod4613b903-4fc0-46ad-b749-744d4fe8da9d/9e28361324c3d1e766cd7b7f60c255c85802f1b2ef3744fd7883e36429db905e\n" +
				"10:blkio:/kubepods/burstable/pod4613b903-4fc0-46ad-b749-744d4fe8da9d/9e28361324c3d1e766cd7b7f60c255c85802f1b2ef3744fd7883e36429db905e\n",
			want: Cgroup{ContainerID: "9e28361324c3d1e766cd7b7f60c255c85802f1b2ef3744fd7883e36429db905e", PodUID: "4613b903-4fc0-46ad-b749-744d4fe8da9d", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// Guaranteed pods sit right below kubepods (kubelet
			// pkg/kubelet/cm/qos_container_manager_linux.go; k3s layout in
			// CJLove/rt-operator notes/cgroupv1_notes.md). String as captured
			// in a public cgroup library's test fixture.
			name: "cgroupfs v1 guaranteed",
			data: "6:cpu,cpuacct:/kubepods/pod5b977639-f878-469b-94ee-47a4aa7e597a/dd55abbabd99bcb4d2ce17ffa77d6f811c90e09202f537c273962a8259cac8a0\n" +
				"5:memory:/kubepods/pod5b977639-f878-469b-94ee-47a4aa7e597a/dd55abbabd99bcb4d2ce17ffa77d6f811c90e09202f537c273962a8259cac8a0\n",
			want: Cgroup{ContainerID: "dd55abbabd99bcb4d2ce17ffa77d6f811c90e09202f537c273962a8259cac8a0", PodUID: "5b977639-f878-469b-94ee-47a4aa7e597a", QOSClass: "guaranteed"},
			ok:   true,
		},
		{
			// rancher/k3k PR #792: k3s on cgroup v2 with the cgroupfs driver.
			name: "cgroupfs v2 k3s burstable",
			data: "0::/kubepods/burstable/pod404bd273-57bc-4508-a386-e2b76d3c9cfe/3aaaa76f09e1de6bb75e84f9c15b737a2d590f69757953e3ec262bd5861dc15b\n",
			want: Cgroup{ContainerID: "3aaaa76f09e1de6bb75e84f9c15b737a2d590f69757953e3ec262bd5861dc15b", PodUID: "404bd273-57bc-4508-a386-e2b76d3c9cfe", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// CRI-O's cgroupfs manager names the container cgroup
			// "crio-<id>" below the pod (cri-o internal/config/cgmgr/cgroupfs.go,
			// ContainerCgroupPath); IDs from kubernetes/minikube #11280.
			name: "cgroupfs crio",
			data: "0::/kubepods/besteffort/pod2ca4a155-3599-498d-bb9d-4446693fa3ea/crio-358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c\n",
			want: Cgroup{ContainerID: "358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c", Runtime: "cri-o", PodUID: "2ca4a155-3599-498d-bb9d-4446693fa3ea", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			// The pod's own cgroup, no container below it: a path listed in
			// google/cadvisor PR #2540.
			name: "cgroupfs pod without container",
			data: "0::/kubepods/burstable/pod1ff47ee6-9685-4726-ac6f-0ff070c452d6\n",
			want: Cgroup{PodUID: "1ff47ee6-9685-4726-ac6f-0ff070c452d6", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// opencontainers/runc #4620: CRI-O, systemd driver, cgroup v1,
			// Burstable (calico-node); "11:files:/" is a v1 line naming nothing.
			name: "systemd crio v1 burstable",
			data: "13:freezer:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c.scope\n" +
				"12:cpuset:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c.scope\n" +
				"11:files:/\n",
			want: Cgroup{ContainerID: "5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c", Runtime: "cri-o", PodUID: "a5c1f8d5-1919-434d-add7-4afaafdaef89", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// opencontainers/runc #4620 (systemctl status of the unit): CRI-O's
			// conmon scope sits in the pod slice but is not the container.
			name: "systemd crio conmon is not the container",
			data: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod207aaad1_659f_4db8_88e0_46e0cdcc3004.slice/crio-conmon-32da98c8522068be05a7510a3eddb09cad6ed2f03286180d0e931d0d0b6224a6.scope\n",
			want: Cgroup{PodUID: "207aaad1-659f-4db8-88e0-46e0cdcc3004", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// crun (CRI-O's runtime on several distributions) with the systemd
			// driver puts the payload in a "container" sub-cgroup of the scope
			// (opencontainers/runc #4072, crun 1.18 release notes); IDs from
			// runc #4620.
			name: "systemd crio container leaf below scope",
			data: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c.scope/container\n",
			want: Cgroup{ContainerID: "5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c", Runtime: "cri-o", PodUID: "a5c1f8d5-1919-434d-add7-4afaafdaef89", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// kubernetes/minikube #11280: CRI-O, systemd driver, BestEffort, in
			// a docker-based node ("/docker/<node>/..."); the process is the
			// pod's pause (sandbox) container, which is still a container.
			name: "systemd crio besteffort pause inside docker node",
			data: "1:name=systemd:/docker/d6701ec289c56e4391acb11d07474b3139466857a305490575508a8b7a9fcf22/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2ca4a155_3599_498d_bb9d_4446693fa3ea.slice/crio-0ba8ac17e4e7a31fb82279503552fe94e64bab4745bf6fd2ff231e7c8ca8bed0.scope\n",
			want: Cgroup{ContainerID: "0ba8ac17e4e7a31fb82279503552fe94e64bab4745bf6fd2ff231e7c8ca8bed0", Runtime: "cri-o", PodUID: "2ca4a155-3599-498d-bb9d-4446693fa3ea", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			// lxc/lxc #3890: Docker (dockershim), systemd driver, v1, Burstable.
			name: "systemd docker v1 burstable",
			data: "12:rdma:/\n" +
				"11:freezer:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d4424e6_bb13_42f4_a47a_45a4828bf54d.slice/docker-d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98.scope\n" +
				"10:pids:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d4424e6_bb13_42f4_a47a_45a4828bf54d.slice/docker-d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98.scope\n",
			want: Cgroup{ContainerID: "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98", Runtime: "docker", PodUID: "7d4424e6-bb13-42f4-a47a-45a4828bf54d", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// kontena/pharos-cluster #440 (systemd-cgls): Docker, systemd
			// driver, BestEffort (kube-proxy).
			name: "systemd docker besteffort",
			data: "1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9692aa0e_748e_11e8_8dfa_76d458035df6.slice/docker-abddff03dfd7710c79a750ce3e730365cbb2c8247a974170c1062683bc3e9152.scope\n",
			want: Cgroup{ContainerID: "abddff03dfd7710c79a750ce3e730365cbb2c8247a974170c1062683bc3e9152", Runtime: "docker", PodUID: "9692aa0e-748e-11e8-8dfa-76d458035df6", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			// netdata/netdata #4868 (cgroup tree): containerd, systemd driver,
			// Guaranteed pod ("kubepods-pod<uid>.slice").
			name: "systemd containerd v2 guaranteed",
			data: "0::/kubepods.slice/kubepods-pod91f5b561_369f_4103_8015_66391059996a.slice/cri-containerd-24c53b774a586f06abc058619b47f71d9d869ac50c92898adbd199106fd0aaeb.scope\n",
			want: Cgroup{ContainerID: "24c53b774a586f06abc058619b47f71d9d869ac50c92898adbd199106fd0aaeb", Runtime: "containerd", PodUID: "91f5b561-369f-4103-8015-66391059996a", QOSClass: "guaranteed"},
			ok:   true,
		},
		{
			// netdata/netdata #4868: a static pod, whose UID is the kubelet's
			// 32-hex manifest hash (no dashes to restore).
			name: "systemd containerd static pod",
			data: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8daa50c3a64c9ff60bb9eab7b44b56fd.slice/cri-containerd-2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5.scope\n",
			want: Cgroup{ContainerID: "2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5", Runtime: "containerd", StaticPodUID: "8daa50c3a64c9ff60bb9eab7b44b56fd", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// containerd/nri PR #227 (absolutePath minus /sys/fs/cgroup): kind
			// on cgroup v2, kubelet --cgroup-root=/kubelet, systemd driver.
			name: "systemd containerd kind cgroup root",
			data: "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod1e597579_417e_482f_bf65_5fe170c3aebd.slice/cri-containerd-a09bc17f5aa29b0dbdec9ede5f46cf1396d2405917ab02e6f1eb1019f388396e.scope\n",
			want: Cgroup{ContainerID: "a09bc17f5aa29b0dbdec9ede5f46cf1396d2405917ab02e6f1eb1019f388396e", Runtime: "containerd", PodUID: "1e597579-417e-482f-bf65-5fe170c3aebd", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			// open-telemetry/opentelemetry-java #4507: containerd with
			// SystemdCgroup shows runc's "<slice>:cri-containerd:<id>" form,
			// some controllers under the containerd service.
			name: "containerd slice:prefix:id form",
			data: "11:perf_event:/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459\n" +
				"10:blkio:/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459\n",
			want: Cgroup{ContainerID: "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459", Runtime: "containerd", PodUID: "0125ec2f-b64a-4868-8f5b-94b56cbab864", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			// elastic/apm-agent-nodejs #3550: the same form, Burstable, on the
			// name=systemd hierarchy under containerd.service.
			name: "containerd slice:prefix:id under containerd.service",
			data: "1:name=systemd:/system.slice/containerd.service/kubepods-burstable-podff49d0be_16b7_4a49_bb9e_8ec1f1f4e27f.slice:cri-containerd:0f99ad5f45163ed14ab8eaf92ed34bb4a631d007f8755a7d79be614bcb0df0ef\n",
			want: Cgroup{ContainerID: "0f99ad5f45163ed14ab8eaf92ed34bb4a631d007f8755a7d79be614bcb0df0ef", Runtime: "containerd", PodUID: "ff49d0be-16b7-4a49-bb9e-8ec1f1f4e27f", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// Reader in another cgroup namespace (agent pod with a private
			// cgroupns): the path climbs with "..". Shape from
			// inspektor-gadget PR #3085 and the kernel's cgroup-v2.rst
			// ("0::/../.."); pod and container IDs from netdata #4868.
			name: "cgroup namespace relative systemd",
			data: "0::/../../../kubepods-burstable.slice/kubepods-burstable-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/cri-containerd-2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36.scope\n",
			want: Cgroup{ContainerID: "2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36", Runtime: "containerd", PodUID: "55c6c714-b240-4dec-9a45-57b61696ab6e", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// The cgroupfs equivalent seen from a sibling pod of the same QoS
			// class: the QoS parent is hidden above "..", so the class is
			// unknown. IDs from the real node output above.
			name: "cgroup namespace relative cgroupfs",
			data: "0::/../../pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n",
			want: Cgroup{ContainerID: "ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91", PodUID: "e0bbe063-7fb9-4e56-84d7-99e74c5bd62b"},
			ok:   true,
		},
		{
			// Hybrid host where the v2 line does not name the pod (it shows
			// the init scope) but v1 lines do: the first v1 line wins.
			// Lines from the real node output above.
			name: "hybrid v2 line names nothing",
			data: "9:name=systemd:/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n" +
				"0::/init.scope\n",
			want: Cgroup{ContainerID: "ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91", PodUID: "e0bbe063-7fb9-4e56-84d7-99e74c5bd62b", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			// When v1 and v2 lines disagree, the v2 line wins even when it
			// comes last. v1 line from gitpod #8243, v2 line from k3k #792.
			name: "hybrid lines disagree v2 wins",
			data: "11:pids:/kubepods/burstable/pod4613b903-4fc0-46ad-b749-744d4fe8da9d/9e28361324c3d1e766cd7b7f60c255c85802f1b2ef3744fd7883e36429db905e\n" +
				"0::/kubepods/burstable/pod404bd273-57bc-4508-a386-e2b76d3c9cfe/3aaaa76f09e1de6bb75e84f9c15b737a2d590f69757953e3ec262bd5861dc15b\n",
			want: Cgroup{ContainerID: "3aaaa76f09e1de6bb75e84f9c15b737a2d590f69757953e3ec262bd5861dc15b", PodUID: "404bd273-57bc-4508-a386-e2b76d3c9cfe", QOSClass: "burstable"},
			ok:   true,
		},
		{
			// A container that nests its own cgroups (kind, dind) below its
			// scope cannot pose as another pod: the first pod from the root
			// counts. Outer path from lxc #3890, inner from gitpod #8243.
			name: "nested kubepods below a container",
			data: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d4424e6_bb13_42f4_a47a_45a4828bf54d.slice/docker-d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98.scope/kubepods/burstable/pod4613b903-4fc0-46ad-b749-744d4fe8da9d/9e28361324c3d1e766cd7b7f60c255c85802f1b2ef3744fd7883e36429db905e\n",
			want: Cgroup{ContainerID: "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98", Runtime: "docker", PodUID: "7d4424e6-bb13-42f4-a47a-45a4828bf54d", QOSClass: "burstable"},
			ok:   true,
		},

		// Not a Kubernetes pod.
		{name: "v2 root", data: "0::/\n"}, // cgroup v2 host process (talos PR #3950 shows 0::/init etc.)
		{
			// This machine's own /proc/self/cgroup (a sandbox, no Kubernetes).
			name: "sandbox v1 and v2",
			data: "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/18f9f549d517a30479a1d2affbf1ee32\n1:cpu:/\n0::/\n",
		},
		{
			// kontena/pharos-cluster #440: a system service (dockerd), v1.
			name: "system service v1",
			data: "11:cpuacct,cpu:/system.slice\n1:name=systemd:/system.slice\n",
		},
		{name: "sshd service v2", data: "0::/system.slice/sshd.service\n"},               // systemd unit cgroup, systemd.unit(5)
		{name: "user session", data: "0::/user.slice/user-1000.slice/session-2.scope\n"}, // logind session scope, systemd.special(7)
		{
			// neuvector/neuvector share/system/cgroup_test.go: a plain Docker
			// container with the systemd driver, no pod.
			name: "plain docker systemd",
			data: "10:devices:/system.slice/docker-9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d.scope\n",
		},
		{
			// kubernetes/kubernetes #18202: a plain Docker container, cgroupfs.
			name: "plain docker cgroupfs",
			data: "9:perf_event:/docker/81950eac55062e5d8e7b5567d1036e4b146dfe212bdc9263c97347e6ce86b904\n",
		},
		{
			// openshift/microshift PR #697: conmon placed in system.slice.
			name: "crio conmon in system.slice",
			data: "0::/system.slice/crio-conmon-e0c85fe7644a858988d9687c2e0736a7d31922740d0f3e001c6b2e0aa7e5f528.scope\n",
		},
		{name: "kubepods QoS level only", data: "0::/kubepods.slice/kubepods-burstable.slice\n"},

		// Malformed.
		{name: "empty", data: ""},
		{name: "garbage", data: "\x00\xff::::\n:\n::\n0:\n"},
		{name: "relative path", data: "0::kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n"},
		{name: "non-numeric hierarchy", data: "x::/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b\n"},
		{name: "cgroupfs pod outside kubepods", data: "0::/machine/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n"},
		{name: "uppercase pod uid", data: "0::/kubepods/besteffort/podE0BBE063-7FB9-4E56-84D7-99E74C5BD62B\n"},
		{name: "systemd uid with dashes", data: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b.slice\n"},
		{name: "short pod uid", data: "0::/kubepods/besteffort/pode0bbe063\n"},
		{
			name: "bad container id keeps the pod",
			data: "0::/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ECBE247B2AA569EE9C21C519CD09888710D85992AE0AD83020BEA0654414DF91\n",
			want: Cgroup{PodUID: "e0bbe063-7fb9-4e56-84d7-99e74c5bd62b", QOSClass: "besteffort"},
			ok:   true,
		},
		{
			name: "truncated container id keeps the pod",
			data: "0::/kubepods.slice/kubepods-pod91f5b561_369f_4103_8015_66391059996a.slice/cri-containerd-24c53b774a586f06abc0.scope\n",
			want: Cgroup{PodUID: "91f5b561-369f-4103-8015-66391059996a", QOSClass: "guaranteed"},
			ok:   true,
		},
		{
			name: "unknown inline prefix keeps the pod",
			data: "0::/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:kata:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459\n",
			want: Cgroup{PodUID: "0125ec2f-b64a-4868-8f5b-94b56cbab864", QOSClass: "besteffort"},
			ok:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseCgroup([]byte(tt.data))
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseCgroup() = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
			checkCgroupInvariants(t, got, ok)
		})
	}
}

// checkCgroupInvariants asserts what every caller may rely on, whatever the
// input was.
func checkCgroupInvariants(t *testing.T, cg Cgroup, ok bool) {
	t.Helper()
	if cg.ContainerID != "" && (len(cg.ContainerID) != 64 || !isHex(cg.ContainerID)) {
		t.Errorf("ContainerID %q is not 64 lowercase hex", cg.ContainerID)
	}
	if cg.PodUID != "" && !isCanonicalUUID(cg.PodUID) {
		t.Errorf("PodUID %q is not a canonical UUID", cg.PodUID)
	}
	if cg.StaticPodUID != "" && (len(cg.StaticPodUID) != 32 || !isHex(cg.StaticPodUID)) {
		t.Errorf("StaticPodUID %q is not 32 lowercase hex", cg.StaticPodUID)
	}
	if cg.PodUID != "" && cg.StaticPodUID != "" {
		t.Errorf("both PodUID %q and StaticPodUID %q set", cg.PodUID, cg.StaticPodUID)
	}
	switch cg.Runtime {
	case "", RuntimeContainerd, RuntimeCRIO, RuntimeDocker:
	default:
		t.Errorf("Runtime %q not one of the documented values", cg.Runtime)
	}
	if cg.Runtime != "" && cg.ContainerID == "" {
		t.Errorf("Runtime %q without a ContainerID", cg.Runtime)
	}
	switch cg.QOSClass {
	case "", QOSGuaranteed, QOSBurstable, QOSBestEffort:
	default:
		t.Errorf("QOSClass %q not one of the documented values", cg.QOSClass)
	}
	if named := cg.PodUID != "" || cg.StaticPodUID != ""; ok != named {
		t.Errorf("ok = %v but pod named = %v (%+v)", ok, named, cg)
	}
	if !ok && cg != (Cgroup{}) {
		t.Errorf("not ok but fields set: %+v", cg)
	}
}

func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

// FuzzParseCgroup checks that no input panics and that whatever comes out
// has the documented shape.
func FuzzParseCgroup(f *testing.F) {
	seeds := []string{
		"0::/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n",
		"12:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c.scope\n",
		"1:name=systemd:/system.slice/containerd.service/kubepods-burstable-podff49d0be_16b7_4a49_bb9e_8ec1f1f4e27f.slice:cri-containerd:0f99ad5f45163ed14ab8eaf92ed34bb4a631d007f8755a7d79be614bcb0df0ef\n",
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8daa50c3a64c9ff60bb9eab7b44b56fd.slice/cri-containerd-2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5.scope\n",
		"0::/../../../kubepods-burstable.slice/kubepods-burstable-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/crio-conmon-2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36.scope\n",
		"0::/\n",
		"",
		":::\n",
		"0::/kubepods-pod.slice:crio:\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cg, ok := ParseCgroup(data)
		checkCgroupInvariants(t, cg, ok)
		// The pod UID must come from the input, not be made up.
		if cg.PodUID != "" {
			underscored := strings.ReplaceAll(cg.PodUID, "-", "_")
			if !strings.Contains(string(data), "pod"+cg.PodUID) && !strings.Contains(string(data), "pod"+underscored) {
				t.Errorf("PodUID %q does not appear in the input", cg.PodUID)
			}
		}
		if cg.ContainerID != "" && !strings.Contains(string(data), cg.ContainerID) {
			t.Errorf("ContainerID %q does not appear in the input", cg.ContainerID)
		}
	})
}
