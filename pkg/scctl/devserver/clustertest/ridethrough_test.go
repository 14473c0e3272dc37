package clustertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/natscluster"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// TestNodeLossLosesAndDuplicatesNothing: a 3-node cluster with R3 streams
// loses one node at a time, every node once, the request stream's leader
// first. The agent and the control plane are each given all three URLs,
// so whichever node each is connected to, each loses its server once and
// moves to another. Requests sent before a loss (stored, not yet applied)
// and right after it (while the stream elects a leader) are all applied
// exactly once and all reach their final status, seen by waits started
// before the loss as well as after it.
func TestNodeLossLosesAndDuplicatesNothing(t *testing.T) {
	logs := &devservertest.LogBuffer{}
	log := logs.Logger().Level(zerolog.InfoLevel)
	c := natscluster.Start(t, 3, devserver.Options{Clusters: []string{cluster}, AckWait: 2 * time.Second})
	cred, _ := c.Credentials(cluster)
	a := startAgent(t, c.URLs(), cred.User, cred.Password, log)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("applied: %v\nagent log:\n%s", a.Applied(), logs.String())
		}
	})
	admin := c.Admin()
	cp, err := controlplane.Dial(context.Background(), controlplane.Options{
		URL: c.URLs(), User: admin.User, Password: admin.Password, Cluster: cluster, Timeout: 2 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(cp.Close)
	pub := a.publicKey(t)

	var sent []protocol.Request
	failedPublishes := 0
	build := func(n int) []protocol.Request {
		reqs := make([]protocol.Request, n)
		for i := range reqs {
			reqs[i] = createRequest(t, fmt.Sprintf("conn_%03d", len(sent)+i), pub)
		}
		return reqs
	}
	publish := func(reqs []protocol.Request) {
		deadline := time.Now().Add(30 * time.Second)
		for _, req := range reqs {
			failedPublishes += publishUntilStored(t, cp, req, deadline)
			sent = append(sent, req)
		}
	}
	send := func(n int) { publish(build(n)) }
	_, adminJS := c.AdminConn()
	// The status stream's consumers by name: a finished wait's consumer may
	// go at any moment, so new ones are counted by name, not by total.
	statusConsumers := func() map[string]bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		names := map[string]bool{}
		st, err := adminJS.Stream(ctx, protocol.StatusStream)
		if err != nil {
			return names
		}
		list := st.ConsumerNames(ctx)
		for n := range list.Name() {
			names[n] = true
		}
		return names
	}

	send(10)
	var early sync.WaitGroup
	earlyErrs := make(chan error, 3*2*10)
	killed := map[int]bool{}
	for round := range c.Len() {
		leader := c.StreamLeader(protocol.RequestStream, 30*time.Second)
		victim := leader
		for i := 0; killed[victim]; i++ {
			victim = i // every node once: the leader when it has not been lost yet
		}
		send(10) // stored, and mostly not applied yet, when the node goes
		// Waits already following requests when the node goes, as scctl's
		// would be: their requests are sent only after the loss, so each
		// must ride through it. The node goes once every wait's consumer
		// exists on the status stream.
		early.Wait()
		base := statusConsumers()
		after := build(10)
		for _, req := range after {
			early.Go(func() {
				if _, err := waitFinal(cp, req, 30*time.Second); err != nil {
					earlyErrs <- fmt.Errorf("wait started before node %d was lost: %w", victim, err)
				}
			})
		}
		require.Eventually(t, func() bool {
			added := 0
			for n := range statusConsumers() {
				if !base[n] {
					added++
				}
			}
			return added >= len(after)
		}, 30*time.Second, 10*time.Millisecond, "the waits follow the status stream before the loss")
		start := time.Now()
		log.Info().Int("node", victim).Msg("test: node lost")
		c.Stop(victim)
		killed[victim] = true
		// And waits started during the leader change: their consumer's
		// create can be lost with the node (before d76be18 such waits hung
		// until their timeout in every run).
		for _, req := range after {
			early.Go(func() {
				if _, err := waitFinal(cp, req, 30*time.Second); err != nil {
					earlyErrs <- fmt.Errorf("wait started as node %d was lost: %w", victim, err)
				}
			})
		}
		publish(after) // while its streams and consumers move to new leaders
		t.Logf("round %d: node %d lost (stream leader %d); 10 requests stored %s after the loss", round, victim, leader, time.Since(start).Round(time.Millisecond))
		c.Restart(victim)
	}
	send(10)

	// The control plane waits for all of them at once, as many scctl
	// invocations would.
	ws := time.Now()
	finals := make([]protocol.StatusEvent, len(sent))
	errs := make([]error, len(sent))
	var wg sync.WaitGroup
	for i, req := range sent {
		wg.Go(func() { finals[i], errs[i] = waitFinal(cp, req, 30*time.Second) })
	}
	wg.Wait()
	early.Wait()
	close(earlyErrs)
	for err := range earlyErrs {
		errs = append(errs, err)
	}
	require.NoError(t, errors.Join(errs...), "every request reaches its final status")
	t.Logf("every final status seen %s after the last request was sent", time.Since(ws).Round(time.Millisecond))
	for i, req := range sent {
		assert.Equal(t, connection.PhaseSucceeded, finals[i].Phase, req.Connection.Name)
		assert.Equal(t, req.ID, finals[i].RequestID)
	}
	_, js := c.AdminConn()
	consumerDrained(t, js, 30*time.Second)

	applied := map[string]int{}
	for _, id := range a.Applied() {
		applied[id]++
	}
	var lost, duplicated []string
	for _, req := range sent {
		switch applied[req.ID] {
		case 0:
			lost = append(lost, req.Connection.Name)
		case 1:
		default:
			duplicated = append(duplicated, req.Connection.Name)
		}
		delete(applied, req.ID)
	}
	assert.Empty(t, lost, "lost")
	assert.Empty(t, duplicated, "applied twice")
	assert.Empty(t, applied, "applied but never sent")
	assert.Len(t, killed, c.Len(), "every node was lost once")
	assert.Positive(t, a.nc.Stats().Reconnects, "the agent lost its server and moved to another")
	t.Logf("%d requests, %d lost, %d duplicated; %d publishes failed and were retried; the agent reconnected %d times",
		len(sent), len(lost), len(duplicated), failedPublishes, a.nc.Stats().Reconnects)
	assert.NotContains(t, logs.String(), "cred-VALUE", "no credential in the agent's logs")
	if strings.Contains(logs.String(), `"level":"error"`) {
		t.Logf("agent errors during the losses:\n%s", logs.String())
	}
}
