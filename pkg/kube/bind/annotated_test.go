package bind

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metadatafake "k8s.io/client-go/metadata/fake"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

func TestRestartOnChangeParsesTheAnnotation(t *testing.T) {
	assert.Equal(t, []string{"db", "queue"}, RestartOnChange(map[string]string{AnnotationRestartOnChange: " db, queue,,db "}))
	assert.Empty(t, RestartOnChange(nil))
}

// A workload that names connections in its annotation gets only the
// restart token of them, however it is reconciled: by a bound member or for
// a restart-only one.
func TestAnnotatedWorkloadRestartsWithItsConnections(t *testing.T) {
	d := deployment("web", ctr("app"))
	d.Annotations = map[string]string{AnnotationRestartOnChange: "db,gone"}
	f := newFixture(t, d)
	token := "1"
	tokens := func(_ context.Context, ns, name string) (string, string, bool, error) {
		if name == "db" {
			return connection.ObjectID(name), token, true, nil
		}
		return "", "", false, nil // no rendered Secret: takes no part
	}
	reconcile := func(members ...Member) (Result, []string) {
		t.Helper()
		f.cs.ClearActions()
		res, err := f.b.ReconcileNotBefore(f.ctx, web, members, time.Time{}, tokens)
		require.NoError(t, err)
		return res, fakeactions.Of(f.cs)
	}

	_, acts := reconcile()
	assert.Equal(t, applyWeb, acts)
	got := f.deployment("web")
	assert.Equal(t, restartToken([]Member{{ID: "db", RestartToken: "1"}}), got.Spec.Template.Annotations[AnnotationRestartToken])
	assert.Empty(t, got.Spec.Template.Spec.Containers[0].Env, "no field of the connection")

	_, acts = reconcile()
	assert.Equal(t, getWeb, acts, "unchanged: one GET")

	// A bound member keeps the annotated one's share of the token.
	m := envMember("blob", "K")
	_, _ = reconcile(m)
	withBlob := f.deployment("web").Spec.Template.Annotations[AnnotationRestartToken]
	assert.Equal(t, restartToken([]Member{m, {ID: "db", RestartToken: "1"}}), withBlob)

	// db's new data: one restart.
	f.now = t0.Add(time.Hour)
	token = "2"
	res, acts := reconcile(m)
	assert.Equal(t, applyWeb, acts)
	assert.True(t, res.Restarted)
	assert.Len(t, f.deployment("web").Spec.Template.Spec.Containers[0].Env, 1, "only the bound member's env")
}

func TestAnnotatedListsOnlyWorkloadsNamingTheConnection(t *testing.T) {
	scheme := runtime.NewScheme()
	require.NoError(t, metav1.AddMetaToScheme(scheme))
	obj := func(kind, name, ann string) runtime.Object {
		m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: kind, APIVersion: "apps/v1"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{AnnotationRestartOnChange: ann}}}
		if kind == "CronJob" {
			m.APIVersion = "batch/v1"
		}
		return m
	}
	meta := metadatafake.NewSimpleMetadataClient(scheme,
		obj("Deployment", "web", "db"), obj("Deployment", "other", "queue"),
		obj("StatefulSet", "store", "queue, db"), obj("CronJob", "nightly", "db"))
	refs, err := Annotated(context.Background(), meta, ns, "db")
	require.NoError(t, err)
	assert.Equal(t, []Ref{
		{Namespace: ns, Kind: connection.WorkloadDeployment, Name: "web"},
		{Namespace: ns, Kind: connection.WorkloadStatefulSet, Name: "store"},
		{Namespace: ns, Kind: connection.WorkloadCronJob, Name: "nightly"},
	}, refs)
}
