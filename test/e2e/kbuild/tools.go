//go:build tools

// Package kbuild pins the Kubernetes components the e2e harness builds from
// source. It is never compiled: the blank imports only make `go mod tidy`
// keep every dependency of the commands in go.mod/go.sum.
package kbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
