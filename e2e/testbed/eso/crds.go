package eso

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// CRDResource is the API of CustomResourceDefinitions, read through the
// dynamic client so apiextensions' types stay out of the module.
var CRDResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// ErrNotCRD: a manifest is not one CustomResourceDefinition.
var ErrNotCRD = errors.New("not a CustomResourceDefinition")

// LoadCRDs reads CRD manifests, one CRD per file.
func LoadCRDs(files []string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("eso: %w", err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			return nil, fmt.Errorf("eso: %s: %w", f, err)
		}
		if u.GetKind() != "CustomResourceDefinition" || u.GetName() == "" {
			return nil, fmt.Errorf("eso: %s: %w (kind %q)", f, ErrNotCRD, u.GetKind())
		}
		out = append(out, u)
	}
	return out, nil
}

// InstallCRDs creates the CRDs (replacing the spec of ones left by an
// earlier run) and waits until each is Established. It returns their names.
func InstallCRDs(ctx context.Context, dyn dynamic.Interface, crds []*unstructured.Unstructured) ([]string, error) {
	api := dyn.Resource(CRDResource)
	var names []string
	for _, crd := range crds {
		_, err := api.Create(ctx, crd, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = replaceSpec(ctx, api, crd)
		}
		if err != nil {
			return names, fmt.Errorf("eso: CRD %s: %w", crd.GetName(), err)
		}
		names = append(names, crd.GetName())
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil //nolint:nilerr // the poll retries until its timeout
			}
			return established(got), nil
		})
		if err != nil {
			return names, fmt.Errorf("eso: CRD %s never Established: %w", name, err)
		}
	}
	return names, nil
}

func replaceSpec(ctx context.Context, api dynamic.NamespaceableResourceInterface, crd *unstructured.Unstructured) error {
	cur, err := api.Get(ctx, crd.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Object["spec"] = crd.Object["spec"]
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// RemoveCRDs deletes the CRDs, and with them every ESO object, and waits
// until they are gone, so whatever runs next sees a cluster without ESO.
func RemoveCRDs(ctx context.Context, dyn dynamic.Interface, names []string) error {
	api := dyn.Resource(CRDResource)
	var errs []error
	for _, name := range names {
		if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("eso: delete CRD %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := api.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			return fmt.Errorf("eso: CRD %s not gone: %w", name, err)
		}
	}
	return nil
}
