package natsbus_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

func TestWithReplicasChangesOnlyTheReplicaCount(t *testing.T) {
	cfgs := natsbus.WithReplicas(3)
	require.Len(t, cfgs, 2)
	req, st := natsbus.RequestStreamConfig(), natsbus.StatusStreamConfig()
	assert.Equal(t, 1, req.Replicas, "the development default stays R1")
	req.Replicas, st.Replicas = 3, 3
	assert.Equal(t, req, cfgs[0])
	assert.Equal(t, st, cfgs[1])
	assert.Equal(t, 1, natsbus.WithReplicas(0)[1].Replicas, "0 is R1, never an invalid stream")
	assert.Zero(t, natsbus.ConsumerConfig("c1", 0).Replicas, "a consumer inherits its stream's replicas")
}
