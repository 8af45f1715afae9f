package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// chartCase is one way to install the chart, and what its DaemonSet must
// look like.
type chartCase struct {
	name string
	args []string
	// caps are the capabilities added back; hostPID goes with SYS_PTRACE.
	caps []string
	// rbac are the "group/resource" the ClusterRole grants (sorted).
	rbac []string
}

var (
	capsWriterPid = []string{"DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "SYS_PTRACE"}
	capsNoWriter  = []string{"DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER"}
	capsHardened  = []string{"DAC_READ_SEARCH"}
	rbacEvents    = []string{"events.k8s.io/events"}
)

func chartCases() []chartCase {
	kubeletRBAC := append([]string{"/nodes/pods"}, rbacEvents...)
	slices.Sort(kubeletRBAC)
	apiRBAC := append([]string{"/namespaces", "/pods"}, rbacEvents...)
	slices.Sort(apiRBAC)
	legacy := append([]string{"/nodes/pods", "/nodes/proxy"}, rbacEvents...)
	slices.Sort(legacy)
	return []chartCase{
		{name: "default", caps: capsWriterPid, rbac: kubeletRBAC},
		{name: "minio", args: []string{"-f", chartDir + "/examples/values-minio.yaml"}, caps: capsWriterPid, rbac: kubeletRBAC},
		{name: "irsa", args: []string{"-f", chartDir + "/examples/values-irsa.yaml"}, caps: capsWriterPid, rbac: kubeletRBAC},
		{name: "apiserver", args: []string{"--set", "attribution.podSource=apiserver"}, caps: capsWriterPid, rbac: apiRBAC},
		{name: "legacy-kubelet", args: []string{"--set", "attribution.kubelet.nodesProxy=true,attribution.kubelet.insecureSkipTLSVerify=true"},
			caps: capsWriterPid, rbac: legacy},
		{name: "no-pod-source", args: []string{"--set", "attribution.podSource=none"}, caps: capsNoWriter, rbac: rbacEvents},
		{name: "routing", args: []string{"--set", "routing.enabled=true,routing.config.default=default," +
			"routing.config.destinations[0].name=team-a,routing.config.destinations[0].store=s3://team-a-dumps," +
			"routing.config.destinations[0].credentialsSecret=team-a-s3,routing.config.routes[0].destination=team-a," +
			"routing.config.routes[0].namespaces={team-a}"}, caps: capsWriterPid, rbac: kubeletRBAC},
		{name: "no-pod-source-writer-pid", args: []string{"--set", "attribution.podSource=none,attribution.writerPid=true"},
			caps: capsWriterPid, rbac: rbacEvents},
		{name: "kubelet-without-writer-pid", args: []string{"--set", "attribution.writerPid=false"}, caps: capsNoWriter, rbac: kubeletRBAC},
		{name: "hardened", args: []string{"--set", "attribution.podSource=none,permissions.foreignDirectories=false,events.enabled=false"},
			caps: capsHardened, rbac: nil},
		{name: "platform-security", args: []string{"--set", "seLinuxOptions.type=spc_t,appArmorProfile.type=Unconfined,priorityClassName=system-node-critical"},
			caps: capsWriterPid, rbac: kubeletRBAC},
		{name: "monitoring", args: []string{"--set", "metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true,prometheusRule.enabled=true"},
			caps: capsWriterPid, rbac: kubeletRBAC},
		{name: "app-volumes", args: []string{"--set", "appVolumes.namespaces={prod,staging},namespaceDirs={hostpath-demo},appVolumes.keepOnUninstall=true,namespace.create=true"},
			caps: capsWriterPid, rbac: kubeletRBAC},
		// What the e2e harness installs: an image imported into containerd,
		// host network (its pods cannot leave their own network namespace),
		// MinIO on the host's loopback.
		{name: "e2e", args: []string{"--set", "image.repository=e2e.local/crashdump,image.tag=e2e,image.pullPolicy=Never," +
			"hostNetwork=true,metrics.bindAddress=127.0.0.1,s3.bucket=e2e,s3.endpoint=http://127.0.0.1:19000,s3.region=us-east-1," +
			"s3.credentials.existingSecret=e2e-minio,attribution.kubelet.url=https://$(HOST_IP):10250," +
			"serviceAccount.name=crashdump-e2e,agent.logLevel=debug,agent.extraArgs={--keep-free=0}"},
			caps: capsWriterPid, rbac: kubeletRBAC},
	}
}

// TestChartRendersValidObjects renders every case and validates each
// object: strict decoding against the API types (in renderObjects), then
// what the API server or the kubelet would refuse.
func TestChartRendersValidObjects(t *testing.T) {
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			objs := renderObjects(t, c.args...)
			if len(objs) < 4 {
				t.Fatalf("only %d objects rendered", len(objs))
			}
			validateObjects(t, objs)
			checkRBAC(t, objs, c.rbac)
		})
	}
}

// The chart's own checks refuse what would not work.
func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"attribution.podSource=kubelt", "podSource"},
		{"attribution.writerPid=maybe", "writerPid"},
		{"terminationGracePeriodSeconds=30", "terminationGracePeriodSeconds (30) must be at least"},
		{"metrics.serviceMonitor.enabled=true,metrics.service.enabled=false", "metrics.serviceMonitor needs metrics.service.enabled"},
		{"s3.sse=AES-256", "sse"},
		{"agent.logFormat=yaml", "logFormat"},
	} {
		_, err := helmTemplateErr(t, "--set", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: error %v, want one mentioning %q", tc.set, err, tc.want)
		}
	}
}

// Strict decoding really refuses unknown fields (the validation above would
// be worthless if it silently dropped them).
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	for _, y := range []string{
		"apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: b\n        securityContxt: {}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  name: y\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: x\nspec:\n  endpoints:\n  - port: m\n    intervall: 30s\n",
		"apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: x\n",
	} {
		if _, err := decodeStrict(y); err == nil {
			t.Errorf("decoded without error:\n%s", y)
		}
	}
}

func checkRBAC(t *testing.T, objs []object, want []string) {
	t.Helper()
	roles := find[*rbacv1.ClusterRole](objs)
	if len(want) == 0 {
		if len(roles) != 0 {
			t.Errorf("no API access needed, but a ClusterRole is rendered: %+v", roles[0].Rules)
		}
		if ds := one[*appsv1.DaemonSet](t, objs); ds.Spec.Template.Spec.AutomountServiceAccountToken == nil || *ds.Spec.Template.Spec.AutomountServiceAccountToken {
			t.Error("no API access needed, but the service account token is mounted")
		}
		return
	}
	if len(roles) != 1 {
		t.Fatalf("%d ClusterRoles", len(roles))
	}
	var have []string
	for _, r := range roles[0].Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("unexpected rule %+v", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				have = append(have, g+"/"+res)
				wantVerbs := []string{"get"}
				switch res {
				case "events":
					wantVerbs = []string{"create"}
				case "pods":
					wantVerbs = []string{"get", "list", "watch"}
				}
				if !slices.Equal(r.Verbs, wantVerbs) {
					t.Errorf("%s/%s verbs %v, want %v", g, res, r.Verbs, wantVerbs)
				}
			}
		}
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Errorf("ClusterRole grants %v, want %v", have, want)
	}
}

var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "PersistentVolume": true}

// validateObjects checks what strict decoding cannot: names, labels,
// references between objects and the fields the API server validates.
func validateObjects(t *testing.T, objs []object) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range objs {
		key := o.gvk.Kind + "/" + o.ns + "/" + o.name
		if seen[key] {
			t.Errorf("%s rendered twice", o)
		}
		seen[key] = true
		acc, ok := o.obj.(metav1.Object)
		if !ok {
			t.Errorf("%s: no object metadata", o)
			continue
		}
		nameFn := apivalidation.NameIsDNSSubdomain
		switch o.gvk.Kind {
		case "Service", "Namespace":
			nameFn = apivalidation.NameIsDNS1035Label
		}
		errs := apivalidation.ValidateObjectMetaAccessor(acc, !clusterScoped[o.gvk.Kind], nameFn, field.NewPath("metadata"))
		if clusterScoped[o.gvk.Kind] && acc.GetNamespace() != "" {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "namespace"), "cluster-scoped"))
		}
		for _, e := range errs {
			t.Errorf("%s: %v", o, e)
		}
	}

	sas := map[string]bool{}
	for _, sa := range find[*corev1.ServiceAccount](objs) {
		sas[sa.Namespace+"/"+sa.Name] = true
	}
	roles := map[string]bool{}
	for _, r := range find[*rbacv1.ClusterRole](objs) {
		roles[r.Name] = true
	}
	for _, b := range find[*rbacv1.ClusterRoleBinding](objs) {
		if b.RoleRef.Kind != "ClusterRole" || !roles[b.RoleRef.Name] {
			t.Errorf("ClusterRoleBinding %s: roleRef %+v not rendered", b.Name, b.RoleRef)
		}
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && len(sas) > 0 && !sas[s.Namespace+"/"+s.Name] {
				t.Errorf("ClusterRoleBinding %s: subject %s/%s not rendered", b.Name, s.Namespace, s.Name)
			}
		}
	}
	for _, cm := range find[*corev1.ConfigMap](objs) {
		for k := range cm.Data {
			for _, msg := range validation.IsConfigMapKey(k) {
				t.Errorf("ConfigMap %s key %q: %s", cm.Name, k, msg)
			}
		}
	}

	ds := one[*appsv1.DaemonSet](t, objs)
	validateDaemonSet(t, ds, sas)
	pod := ds.Spec.Template
	podLabels := labels.Set(pod.Labels)
	ports := map[string]int32{}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
	}
	svcs := find[*corev1.Service](objs)
	for _, svc := range svcs {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selects %v, not the agent's pods %v", svc.Name, svc.Spec.Selector, pod.Labels)
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.Type == intstr.String && ports[p.TargetPort.StrVal] == 0 {
				t.Errorf("Service %s targetPort %q is no container port", svc.Name, p.TargetPort.StrVal)
			}
			for _, msg := range validation.IsValidPortName(p.Name) {
				t.Errorf("Service %s port name %q: %s", svc.Name, p.Name, msg)
			}
		}
	}
	for _, sm := range find[*serviceMonitor](objs) {
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		matched := false
		for _, svc := range svcs {
			if sel.Matches(labels.Set(svc.Labels)) {
				matched = true
				for _, e := range sm.Spec.Endpoints {
					if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
						t.Errorf("ServiceMonitor port %q not on Service %s", e.Port, svc.Name)
					}
				}
			}
		}
		if !matched {
			t.Errorf("ServiceMonitor %s selects no rendered Service", sm.Name)
		}
	}
	for _, pm := range find[*podMonitor](objs) {
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(podLabels) {
			t.Errorf("PodMonitor %s does not select the agent's pods", pm.Name)
		}
		for _, e := range pm.Spec.PodMetricsEndpoints {
			if ports[e.Port] == 0 {
				t.Errorf("PodMonitor port %q is no container port", e.Port)
			}
		}
	}
	validateAppVolumes(t, objs)
}

func validateDaemonSet(t *testing.T, ds *appsv1.DaemonSet, sas map[string]bool) {
	t.Helper()
	for _, e := range metavalidation.ValidateLabels(ds.Spec.Template.Labels, field.NewPath("spec", "template", "labels")) {
		t.Error(e)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("DaemonSet selector %v does not match its template's labels %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
	}
	// Dumps happen on every node, tainted or not: by default the agent
	// tolerates every taint (no example values narrow it).
	tolerAll := false
	for _, tl := range ds.Spec.Template.Spec.Tolerations {
		if tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == "" {
			tolerAll = true
		}
	}
	if !tolerAll {
		t.Errorf("tolerations %+v: want one that tolerates every taint (operator Exists, no key, no effect)", ds.Spec.Template.Spec.Tolerations)
	}
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil || u.RollingUpdate.MaxUnavailable == nil {
		t.Errorf("update strategy %+v: want RollingUpdate with maxUnavailable", u)
	} else if mu := u.RollingUpdate.MaxUnavailable; mu.Type == intstr.String {
		if msgs := validation.IsValidPercent(mu.StrVal); len(msgs) > 0 {
			t.Errorf("maxUnavailable %q: %v", mu.StrVal, msgs)
		}
	}
	spec := ds.Spec.Template.Spec
	if len(sas) > 0 && !sas[ds.Namespace+"/"+spec.ServiceAccountName] {
		t.Errorf("serviceAccountName %q is not rendered", spec.ServiceAccountName)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		if _, dup := vols[v.Name]; dup {
			t.Errorf("volume %q twice", v.Name)
		}
		vols[v.Name] = v
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			t.Errorf("volume name %q: %s", v.Name, msg)
		}
	}
	if len(spec.InitContainers) != 0 || len(spec.Containers) != 1 {
		t.Fatalf("want one container and no init containers, have %d and %d", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	if c.Image == "" || !slices.Contains([]corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}, c.ImagePullPolicy) {
		t.Errorf("image %q pull policy %q", c.Image, c.ImagePullPolicy)
	}
	if len(c.Args) == 0 || c.Args[0] != "agent" || len(c.Command) != 0 {
		t.Errorf("want the image's entrypoint with args [agent ...], have command %v args %v", c.Command, c.Args)
	}
	ports := map[string]bool{}
	for _, p := range c.Ports {
		for _, msg := range validation.IsValidPortName(p.Name) {
			t.Errorf("port name %q: %s", p.Name, msg)
		}
		for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
			t.Errorf("port %d: %s", p.ContainerPort, msg)
		}
		ports[p.Name] = true
		if !strings.Contains(strings.Join(c.Args, " "), fmt.Sprintf(":%d", p.ContainerPort)) {
			t.Errorf("container port %d is not the --listen-address port (%v)", p.ContainerPort, c.Args)
		}
	}
	for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s probe missing", name)
			continue
		}
		if pr.HTTPGet.Port.Type == intstr.String && !ports[pr.HTTPGet.Port.StrVal] {
			t.Errorf("%s probe port %q is no container port", name, pr.HTTPGet.Port.StrVal)
		}
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if pr.HTTPGet.Path != want {
			t.Errorf("%s probe path %q, want %q", name, pr.HTTPGet.Path, want)
		}
		if pr.TimeoutSeconds >= pr.PeriodSeconds {
			t.Errorf("%s probe timeout %ds not below its period %ds", name, pr.TimeoutSeconds, pr.PeriodSeconds)
		}
	}
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("volumeMount %q has no volume", m.Name)
		}
	}
	envs := map[string]bool{}
	for _, e := range c.Env {
		for _, msg := range validation.IsEnvVarName(e.Name) {
			t.Errorf("env %q: %s", e.Name, msg)
		}
		if envs[e.Name] {
			t.Errorf("env %q twice", e.Name)
		}
		envs[e.Name] = true
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			for _, msg := range validation.IsConfigMapKey(e.ValueFrom.SecretKeyRef.Key) {
				t.Errorf("env %q secret key: %s", e.Name, msg)
			}
		}
	}
	if !envs["NODE_NAME"] {
		t.Error("NODE_NAME is not set from the downward API")
	}
	// Kubernetes expands $(VAR) in args only for variables defined before.
	for _, a := range c.Args {
		for _, ref := range strings.Split(a, "$(")[1:] {
			v, _, _ := strings.Cut(ref, ")")
			if !envs[v] {
				t.Errorf("arg %q refers to $(%s), which is not an env var of the container", a, v)
			}
		}
	}
	// Every --flag given is one the agent has (docs/configuration.md is
	// generated from the flags).
	ref := agentFlagsFromReference(t)
	var grace time.Duration
	for _, a := range c.Args[1:] {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("arg %q is not a --flag", a)
			continue
		}
		name, val, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ref[name] {
			t.Errorf("arg %q: the agent has no flag --%s (docs/configuration.md)", a, name)
		}
		if name == "shutdown-grace" {
			grace, _ = time.ParseDuration(val)
		}
	}
	if spec.TerminationGracePeriodSeconds == nil || time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second < grace+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v not above --shutdown-grace %s + the HTTP shutdown", spec.TerminationGracePeriodSeconds, grace)
	}
	if r := c.Resources; len(r.Limits) > 0 || len(r.Requests) > 0 {
		for res, q := range r.Requests {
			if l, ok := r.Limits[res]; !ok || l.Cmp(q) != 0 {
				t.Errorf("resources: request %s=%s is not equal to its limit", res, q.String())
			}
		}
	}
}

func validateAppVolumes(t *testing.T, objs []object) {
	t.Helper()
	pvcs := map[string]*corev1.PersistentVolumeClaim{}
	for _, c := range find[*corev1.PersistentVolumeClaim](objs) {
		pvcs[c.Namespace+"/"+c.Name] = c
	}
	pvs := find[*corev1.PersistentVolume](objs)
	if len(pvs) != len(pvcs) {
		t.Errorf("%d PVs for %d PVCs", len(pvs), len(pvcs))
	}
	ds := one[*appsv1.DaemonSet](t, objs)
	args := strings.Join(ds.Spec.Template.Spec.Containers[0].Args, " ")
	for _, pv := range pvs {
		ref := pv.Spec.ClaimRef
		if ref == nil {
			t.Errorf("PV %s has no claimRef", pv.Name)
			continue
		}
		pvc := pvcs[ref.Namespace+"/"+ref.Name]
		if pvc == nil {
			t.Errorf("PV %s claimRef %s/%s is not rendered", pv.Name, ref.Namespace, ref.Name)
			continue
		}
		if pvc.Spec.VolumeName != pv.Name {
			t.Errorf("PVC %s/%s volumeName %q, want %q", pvc.Namespace, pvc.Name, pvc.Spec.VolumeName, pv.Name)
		}
		if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != pv.Spec.StorageClassName || pv.Spec.StorageClassName == "" {
			t.Errorf("PV %s and its PVC disagree on the storage class", pv.Name)
		}
		for _, m := range pvc.Spec.AccessModes {
			if !slices.Contains(pv.Spec.AccessModes, m) {
				t.Errorf("PVC %s access mode %s not offered by PV %s", pvc.Name, m, pv.Name)
			}
		}
		if req, cap := pvc.Spec.Resources.Requests[corev1.ResourceStorage], pv.Spec.Capacity[corev1.ResourceStorage]; req.Cmp(cap) > 0 {
			t.Errorf("PVC %s requests %s, PV offers %s", pvc.Name, req.String(), cap.String())
		}
		hp := pv.Spec.HostPath
		want := "/var/lib/crashdump/dumps/" + ref.Namespace
		if hp == nil || hp.Path != want {
			t.Errorf("PV %s hostPath %+v, want %s", pv.Name, hp, want)
		}
		if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
			t.Errorf("PV %s reclaim policy %s: dumps must never be recycled", pv.Name, pv.Spec.PersistentVolumeReclaimPolicy)
		}
		if !strings.Contains(args, "--namespace-dirs=") || !slices.Contains(strings.Split(flagValue(args, "namespace-dirs"), ","), ref.Namespace) {
			t.Errorf("namespace %s has a PV but the agent does not create its directory (%s)", ref.Namespace, args)
		}
	}
}

// flagValue returns the value of --name=value in a space-joined arg list.
func flagValue(args, name string) string {
	for _, a := range strings.Fields(args) {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}
