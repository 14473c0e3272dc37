//go:build integration

package jobrun_integration

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// A run that died between its creates and its status write, on a real API
// server: the Applier creates the connection's objects for its record
// (stamping the creator token derived from the record's real UID) and
// nothing records their UIDs. The next run adopts them, records the
// server's UIDs and succeeds; a look-alike of another connection's Secret
// carrying a token copied off this one is refused.
func TestRunAdoptsWhatADeadRunCreated(t *testing.T) {
	e := setup(t)
	e.apply(e.wiChange("kv1"))
	c := e.get("kv1")
	require.NotEmpty(t, c.RecordUID, "the store reads the record's UID")
	objs, err := render.Render(c, nil)
	require.NoError(t, err)
	res, err := apply.New(e.client, nil).Apply(e.ctx, apply.OwnerOf(c), objs)
	require.NoError(t, err)
	require.Equal(t, 2, res.Created)
	require.Empty(t, e.get("kv1").Status.Owned, "the run died before recording")

	_, err = e.runner().Run(e.ctx)
	require.NoError(t, err)
	c = e.get("kv1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Status.Message)
	want := make([]connection.OwnedObject, 0, len(res.Objects))
	for _, o := range res.Objects {
		want = append(want, connection.OwnedObject{ResourceRef: o.Ref, UID: o.UID})
	}
	assert.Equal(t, want, c.Status.Owned, "the objects the dead run created, not replacements")

	// The token names its object: copied onto a look-alike of kv2's
	// Secret it proves nothing.
	sec, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-kv1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	spoof := e.spoofSecret("sc-kv2-secret", "kv2")
	spoof.Annotations = map[string]string{apply.AnnotationCreator: sec.Annotations[apply.AnnotationCreator]}
	_, err = e.client.CoreV1().Secrets(e.target).Update(e.ctx, spoof, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.apply(e.wiChange("kv2"))
	_, err = e.runner().Run(e.ctx)
	require.ErrorIs(t, err, jobrun.ErrFailed)
	assert.Equal(t, jobrun.ReasonSecretIsOwned, e.get("kv2").Status.Reason)
}
