package pods

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/crashdump-io/crashdump/collector/kubeapi"
)

// APIServer lists the node's pods from the API server: pods in all
// namespaces with fieldSelector spec.nodeName=<node> (RBAC: list pods).
// resourceVersion=0 lets the API server answer from its watch cache, so
// 500 agents refreshing every 30 s cost it little; that answer may lag the
// store by moments, which the on-demand refresh covers. Safe for concurrent
// use.
type APIServer struct {
	client *kubeapi.Client
	node   string
	retry  Retry
}

// NewAPIServer builds an API server source for node.
func NewAPIServer(client *kubeapi.Client, node string, retry Retry) (*APIServer, error) {
	if node == "" {
		return nil, errors.New("api server pod source: node name is required")
	}
	return &APIServer{client: client, node: node, retry: retry}, nil
}

func (a *APIServer) String() string { return "apiserver (spec.nodeName=" + a.node + ")" }

// List implements Source.
func (a *APIServer) List(ctx context.Context) ([]corev1.Pod, error) {
	sel := fields.OneTermEqualSelector("spec.nodeName", a.node).String()
	pods, err := a.retry.do(ctx, func(ctx context.Context) ([]corev1.Pod, error) {
		list, err := a.client.ListPods(ctx, metav1.NamespaceAll, kubeapi.ListOptions{FieldSelector: sel, ResourceVersion: "0"})
		if err != nil {
			return nil, err
		}
		if err := checkPods("/api/v1/pods", list.Items); err != nil {
			return nil, err
		}
		return list.Items, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pods on node %s from the API server: %w", a.node, err)
	}
	return pods, nil
}
