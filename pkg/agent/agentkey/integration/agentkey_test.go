//go:build integration

// Package agentkey_integration runs agentkey against a real API server
// (e2e/testbed), where the create race between replicas is real.
package agentkey_integration

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/agentkey"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

// Several replicas start at once against an empty namespace: exactly one
// Secret is created and every replica ends up with its key.
func TestConcurrentReplicasAgreeOnOneKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := kubetest.New(t).Clientset
	ns := kubetest.Namespace(t)

	const replicas = 8
	keys := make([]string, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			kp, err := agentkey.Load(ctx, client, ns)
			if assert.NoError(t, err) {
				keys[i], _ = kp.PublicKey()
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, k := range keys {
		assert.Equal(t, keys[0], k)
	}
	assert.True(t, nkeys.IsValidPublicCurveKey(keys[0]))

	s, err := client.CoreV1().Secrets(ns).Get(ctx, agentkey.SecretName, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, s.ManagedFields)
	assert.Equal(t, connection.FieldManager, s.ManagedFields[0].Manager)
	again, err := agentkey.Load(ctx, client, ns)
	require.NoError(t, err)
	pub, _ := again.PublicKey()
	assert.Equal(t, keys[0], pub, "a restart reads the same key")
}
