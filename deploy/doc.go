// Package deploy holds no code: its tests check what ships beside the
// binary.
//
//   - The Helm chart (helm/crashdump) is rendered with the pinned helm for
//     the default, MinIO, IRSA and every mode's values, and each object is
//     decoded strictly (unknown or duplicate fields fail) against the
//     Kubernetes API types of the pinned client-go, then checked for what
//     the API server would refuse or what would not work (names, labels,
//     selectors, ports, volumes, references between objects).
//   - The DaemonSet is least privilege: not privileged, read-only root
//     filesystem, no privilege escalation, seccomp RuntimeDefault, all
//     capabilities dropped and only the documented ones added back, hostPID
//     only with writer-pid attribution.
//   - The generated files are up to date: deploy/manifests/*.yaml and
//     deploy/alerts/crashdump-rules.yaml (`make manifests` regenerates them
//     through this package: go test ./deploy -run TestGenerated -update).
//   - The Grafana dashboard and the alert rules use only metrics the agent
//     exports.
//   - The image build inputs: .dockerignore keeps every package the binary
//     needs, the Dockerfile builds it like `make build`.
//   - On a machine where the tests run as root (CI), each capability the
//     chart grants is shown to be needed by running the agent without it.
//
// helm and promtool come from `make tools` (bin/); `make deploy-test` runs
// helm lint and the promtool rule tests.
package deploy
