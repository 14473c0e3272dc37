//go:build integration

// Package apitest checks RunWithAPI/APIConfig, and internal/testkit/kubetest
// built on them, end to end against a real private control plane: what every
// integration package relies on.
package apitest

import (
	"context"
	"os"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
)

func TestMain(m *testing.M) { os.Exit(testbed.RunWithAPI(m)) }

func TestAPIModeServesControllers(t *testing.T) {
	cfg := testbed.APIConfig(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "apitest-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The ServiceAccount and root-CA controllers run: the namespace gets
	// its default ServiceAccount and kube-root-ca.crt.
	poll(ctx, t, "default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	poll(ctx, t, "kube-root-ca.crt", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
	// Tokens are signed by the apiserver (TokenRequest).
	tr, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, "default", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"https://kubernetes.default.svc.cluster.local"}}}, metav1.CreateOptions{})
	if err != nil || tr.Status.Token == "" {
		t.Fatalf("token request: %v", err)
	}
	// The namespace controller finalizes deletions.
	if _, err := cs.CoreV1().ConfigMaps(ns.Name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "namespace deletion", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})

	// APIConfig hands out copies.
	cfg.Host = "https://example.invalid"
	if testbed.APIConfig(t).Host == cfg.Host {
		t.Fatal("APIConfig returned a shared config")
	}
}

func poll(ctx context.Context, t *testing.T, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// kubetest.Namespace, which every integration package uses: a unique,
// labelled namespace, deleted once its test ends.
func TestKubetestNamespaceLifecycle(t *testing.T) {
	k := kubetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first, second string
	t.Run("sub", func(t *testing.T) {
		first = kubetest.Namespace(t, kubetest.Labels(map[string]string{"extra": "yes"}))
		second = kubetest.Namespace(t)
		ns, err := k.Clientset.CoreV1().Namespaces().Get(ctx, first, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ns.Labels[kubetest.LabelTest] != "TestKubetestNamespaceLifecycle_sub" || ns.Labels["extra"] != "yes" ||
			ns.Annotations[kubetest.AnnotationTest] != "TestKubetestNamespaceLifecycle/sub" {
			t.Errorf("labels %v, annotations %v", ns.Labels, ns.Annotations)
		}
	})
	if first == second {
		t.Fatalf("two calls returned the same namespace %s", first)
	}
	for _, name := range []string{first, second} {
		poll(ctx, t, "deletion of "+name, func(ctx context.Context) (bool, error) {
			ns, err := k.Clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err) || err == nil && ns.DeletionTimestamp != nil, nil
		})
	}
}
