package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

func TestClassify(t *testing.T) {
	secrets := schema.GroupResource{Resource: "secrets"}
	wrap := func(err error) error { return fmt.Errorf("write Secret team-a/x: %w", fmt.Errorf("layer: %w", err)) }
	terminating := apierrors.NewForbidden(secrets, "x", errors.New("namespace team-a is being terminated"))
	terminating.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}
	refused := &url.Error{Op: "Post", URL: "https://10.0.0.1/api", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	reset := &url.Error{Op: "Get", URL: "https://10.0.0.1/api", Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}
	webhookTimeout := apierrors.NewInternalError(errors.New(`failed calling webhook "x": context deadline exceeded`))
	for name, tc := range map[string]struct {
		err       error
		transient bool
	}{
		"429":                        {apierrors.NewTooManyRequests("slow down", 1), true},
		"503 etcd leader change":     {apierrors.NewServiceUnavailable("etcdserver: leader changed"), true},
		"500 webhook timeout":        {webhookTimeout, true},
		"504 server timeout":         {apierrors.NewServerTimeout(secrets, "create", 2), true},
		"timeout":                    {apierrors.NewTimeoutError("request did not complete", 1), true},
		"502 unnamed 5xx":            {apierrors.NewGenericServerResponse(502, "POST", secrets, "x", "bad gateway", 0, true), true},
		"conflict outlived retries":  {apierrors.NewConflict(secrets, "x", errors.New("modified")), true},
		"already exists outlived":    {apierrors.NewAlreadyExists(secrets, "x"), true},
		"call deadline":              {context.DeadlineExceeded, true},
		"connection refused":         {refused, true},
		"connection reset":           {reset, true},
		"unexpected EOF":             {io.ErrUnexpectedEOF, true},
		"unknown error":              {errors.New("something odd"), true},
		"Secret owned":               {fmt.Errorf("x: %w", ErrSecretIsOwned), false},
		"ServiceAccount owned":       {ErrServiceAccountIsOwned, false},
		"SecretProviderClass owned":  {ErrSecretProviderClassIsOwned, false},
		"CSI driver missing":         {ErrCSIDriverMissing, false},
		"namespace missing":          {ErrNamespaceMissing, false},
		"missing credential":         {render.ErrMissingCredential, false},
		"spec incomplete":            {render.ErrIncomplete, false},
		"validation":                 {connection.ErrInvalid, false},
		"corrupt record":             {record.ErrCorrupt, false},
		"forbidden":                  {apierrors.NewForbidden(secrets, "x", errors.New("RBAC")), false},
		"quota is forbidden":         {apierrors.NewForbidden(secrets, "x", errors.New("exceeded quota")), false},
		"namespace terminating":      {terminating, false},
		"invalid":                    {apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "x", field.ErrorList{field.Invalid(field.NewPath("data"), "", "bad")}), false},
		"bad request":                {apierrors.NewBadRequest("no"), false},
		"unauthorized":               {apierrors.NewUnauthorized("token"), false},
		"not found":                  {apierrors.NewNotFound(secrets, "x"), false},
		"no CRD for the kind":        {&meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "secrets-store.csi.x-k8s.io", Kind: "SecretProviderClass"}}, false},
		"413":                        {apierrors.NewRequestEntityTooLargeError("big"), false},
		"405":                        {apierrors.NewMethodNotSupported(secrets, "patch"), false},
		"unnamed 4xx judged request": {apierrors.NewGenericServerResponse(418, "POST", secrets, "x", "teapot", 0, false), false},
		"owned beats a wrapped 503":  {errors.Join(ErrSecretIsOwned, apierrors.NewServiceUnavailable("x")), false},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.transient, Transient(tc.err), "bare")
			assert.Equal(t, tc.transient, Transient(wrap(tc.err)), "wrapped twice with %%w")
			assert.Equal(t, !tc.transient, Permanent(wrap(tc.err)))
		})
	}
	assert.False(t, Transient(nil))
	assert.False(t, Permanent(nil))
}

// A namespace deleted after the check surfaces on the write itself.
func TestApplyNamespaceGoneMidRunIsNamespaceMissing(t *testing.T) {
	for name, apiErr := range map[string]error{
		"deleted": apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns),
		"terminating": func() error {
			e := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "sc-db1-secret", errors.New("being terminated"))
			e.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}
			return e
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			c, creds := secretConn(t, "db1")
			client := newClient(namespace(ns))
			client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, apiErr })
			_, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
			require.ErrorIs(t, err, ErrNamespaceMissing)
			assert.True(t, Permanent(err))
			assert.Equal(t, []string{
				"get namespaces /team-a", "get secrets team-a/sc-db1-secret", "create secrets team-a/sc-db1-secret",
			}, fakeactions.Of(client), "not retried")
		})
	}
}

func TestApplyTerminatingNamespaceIsNamespaceMissing(t *testing.T) {
	c, creds := secretConn(t, "db1")
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	term := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, DeletionTimestamp: &now, Finalizers: []string{"kubernetes"}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	client := newClient(term)
	_, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
	require.ErrorIs(t, err, ErrNamespaceMissing)
	assert.Contains(t, err.Error(), `namespace "team-a" is being deleted`)
	assert.Equal(t, []string{"get namespaces /team-a"}, fakeactions.Of(client), "nothing written into it")
}
