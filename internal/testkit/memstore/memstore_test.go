package memstore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

func TestApplyIsIdempotentAndDeleteMarks(t *testing.T) {
	ctx := context.Background()
	s := New()
	ch := connection.Change{RequestID: "r1", Spec: connection.Spec{Name: "a", Scope: "team-a"},
		Credentials: connection.Credentials{"K": "cred-VALUE-1"}}
	c, applied, err := s.Apply(ctx, ch)
	require.NoError(t, err)
	assert.True(t, applied)
	assert.EqualValues(t, 1, c.Generation)
	assert.Equal(t, connection.PhasePending, c.Status.Phase)

	_, applied, err = s.Apply(ctx, ch)
	require.NoError(t, err)
	assert.False(t, applied, "a redelivery is not applied again")
	assert.Equal(t, []string{"r1"}, s.Applied())
	assert.Equal(t, connection.Credentials{"K": "cred-VALUE-1"}, s.Credentials(c.Spec.ID()))

	del := connection.Change{RequestID: "r2", Spec: ch.Spec, Delete: true}
	c, applied, err = s.Apply(ctx, del)
	require.NoError(t, err)
	assert.True(t, applied)
	assert.Equal(t, "r2", c.Deletion.RequestID)

	s.Remove(c.Spec.ID())
	_, err = s.Get(ctx, c.Spec.ID())
	assert.True(t, record.IsNotFound(err))
	_, _, err = s.Apply(ctx, connection.Change{RequestID: "r3", Spec: ch.Spec, Delete: true})
	assert.True(t, record.IsNotFound(err))
}
