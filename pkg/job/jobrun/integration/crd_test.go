//go:build integration

package jobrun_integration

import (
	"context"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

func (e *env) spcCRDInstalled() bool {
	_, err := e.dynamic.Resource(apply.CRDResource).Get(e.ctx, render.SPCCRDName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	require.NoError(e.t, err)
	return true
}

// installSPCCRD installs a minimal SecretProviderClass CRD (schema
// preserving unknown fields), as the CSI driver's chart would, and waits
// until it is Established.
func (e *env) installSPCCRD() {
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": render.SPCCRDName},
		"spec": map[string]any{
			"group": render.SPCGroup,
			"scope": "Namespaced",
			"names": map[string]any{
				"plural": render.SPCResource, "singular": "secretproviderclass",
				"kind": render.KindSecretProviderClass, "listKind": "SecretProviderClassList",
			},
			"versions": []any{map[string]any{
				"name": render.SPCVersion, "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
	_, err := e.dynamic.Resource(apply.CRDResource).Create(e.ctx, crd, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(e.t, err)
	}
	err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := e.dynamic.Resource(apply.CRDResource).Get(ctx, render.SPCCRDName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(e.t, err)
}
