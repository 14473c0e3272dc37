package kubetest

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels and annotations put on every namespace Namespace creates, so a
// leftover (a killed test binary) can be traced to its test.
const (
	LabelTest      = "sc-extension.io/integration-test"      // sanitised test name
	AnnotationTest = "sc-extension.io/integration-test-name" // exact test name
)

type nsOptions struct {
	name   string
	prefix string
	labels map[string]string
}

// NamespaceOption changes the namespace Namespace creates.
type NamespaceOption func(*nsOptions)

// Prefix starts the generated name with prefix (default: the test's name),
// for tests with several namespaces whose roles should read in a dump.
func Prefix(prefix string) NamespaceOption {
	return func(o *nsOptions) { o.prefix = prefix }
}

// Name gives the namespace a fixed name instead of a generated one, for a
// test whose subject expects that name (a chart rendered for sc-system).
// Only one test of the binary may use a given name at a time.
func Name(name string) NamespaceOption {
	return func(o *nsOptions) { o.name = name }
}

// Labels adds labels, e.g. Pod Security admission levels.
func Labels(l map[string]string) NamespaceOption {
	return func(o *nsOptions) {
		for k, v := range l {
			o.labels[k] = v
		}
	}
}

// Namespace creates a uniquely named namespace on the package's API server
// and deletes it at t.Cleanup; it returns the name.
func Namespace(t testing.TB, opts ...NamespaceOption) string {
	t.Helper()
	o := &nsOptions{prefix: namePrefix(t.Name()), labels: map[string]string{LabelTest: labelValue(t.Name())}}
	for _, opt := range opts {
		opt(o)
	}
	if o.name != "" {
		o.prefix = ""
	}
	cs := New(t).Clientset
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: o.name, GenerateName: o.prefix, Labels: o.labels, Annotations: map[string]string{AnnotationTest: t.Name()},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create namespace: %v", err)
	}
	t.Cleanup(func() {
		// The namespace controller finishes the deletion in the background:
		// nothing later in this binary reuses the name, so no need to wait.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("kubetest: delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// namePrefix turns a test name into a GenerateName prefix: a DNS label of
// at most 40 characters ending in "-", leaving room for the random suffix.
func namePrefix(test string) string {
	var b strings.Builder
	dash := true // no leading dash
	for _, r := range strings.ToLower(test) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimSuffix(b.String(), "-")
	s = strings.TrimPrefix(s, "test")
	s = strings.Trim(s, "-")
	if len(s) > 39 {
		s = strings.TrimRight(s[:39], "-")
	}
	if s == "" {
		s = "test"
	}
	return s + "-"
}

// labelValue is the test name reduced to what a label value allows.
func labelValue(test string) string {
	v := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, test)
	if len(v) > validation.LabelValueMaxLength {
		v = v[:validation.LabelValueMaxLength]
	}
	return strings.Trim(v, "-_.")
}
