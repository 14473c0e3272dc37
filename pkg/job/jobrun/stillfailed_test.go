package jobrun

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod retried by the Job (backoffLimit) after a failed run finds no
// pending work; it must fail again and say why, or its success would
// delete the Job and the evidence `kubectl logs job/sc-job` shows.
func TestRunFailsWhileAnEarlierFailureStands(t *testing.T) {
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret"}}
	f := newFixture(t, ownJob(), foreign)
	f.apply(f.secretChange("db1"))
	_, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	f.out.Reset()

	sum, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed, "the retry fails too")
	assert.Empty(t, sum.Failures, "nothing was processed again")
	require.Len(t, sum.StillFailed, 1)
	assert.Contains(t, f.out.String(), "1 still failing from an earlier run: connection \"db1\" failed at step apply-secret")
	_, err = f.client.BatchV1().Jobs(sys).Get(context.Background(), "sc-job", metav1.GetOptions{})
	assert.NoError(t, err, "the Job stays")
}
