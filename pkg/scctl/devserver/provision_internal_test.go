package devserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A clustered node's provisioning resumes at the step that failed: the
// steps done (the streams, the first consumers) are not asked again, so a
// thousand consumers' worth of steps finishes however often one call is
// cut short by a leader change.
func TestClusteredProvisioningResumesWhereItFailed(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true})
	require.NoError(t, err)
	go ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.JetStreamIsCurrent(), "a JetStream server outside a cluster is current")

	s := &Server{opts: Options{Cluster: ClusterOptions{Name: "c", ServerName: "n1"}, Logger: zerolog.Nop()}}
	calls := make([]int, 4)
	failures := map[int]int{1: 2, 3: 1} // step -> how many times it fails first
	var steps []func(context.Context) error
	for i := range calls {
		steps = append(steps, func(context.Context) error {
			calls[i]++
			if calls[i] <= failures[i] {
				return errors.New("leader changed")
			}
			return nil
		})
	}
	require.NoError(t, s.provisionClustered(context.Background(), ns, steps))
	assert.Equal(t, []int{1, 3, 1, 2}, calls, "each step until it succeeds, none after")
}
