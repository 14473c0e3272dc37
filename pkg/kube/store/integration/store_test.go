//go:build integration

// Package store_integration runs the store against a real API server.
package store_integration

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

func newStore(t *testing.T) *store.Store {
	return store.New(kubetest.New(t).Clientset, kubetest.Namespace(t))
}

func change(name, reqID, scope, cred string) connection.Change {
	return connection.Change{
		RequestID: reqID,
		Spec: connection.Spec{Name: name, Scope: scope,
			TargetService:  connection.TargetService{Type: catalog.TargetStorageBlob, ID: "/subscriptions/x"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
			Configurations: []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Credential: true}}},
		Credentials: connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": cred},
	}
}

// TestConcurrentWritersLoseNothing: 8 writers, each applying 5 distinct
// changes to a shared connection and 5 to its own, race on a real API
// server. Every change must be counted exactly once, and the credential
// Secret must pair with whichever change won last.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const writers, perWriter = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				req := fmt.Sprintf("w%d-%d", w, i)
				if _, _, err := s.Apply(ctx, change("shared", req, "ns-"+req, "cred-VALUE-"+req)); err != nil {
					errs <- err
				}
				if _, _, err := s.Apply(ctx, change(fmt.Sprintf("own%d", w), req, "ns-"+req, "cred-VALUE-"+req)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	shared, err := s.Get(ctx, "shared")
	require.NoError(t, err)
	assert.EqualValues(t, writers*perWriter, shared.Generation, "every distinct change bumped the generation once")
	assert.Len(t, shared.RecentRequestIDs, connection.MaxRecentRequestIDs)
	creds, err := s.Credentials(ctx, shared)
	require.NoError(t, err, "the credential Secret pairs with the record")
	last := shared.Status.LastRequestID
	assert.Equal(t, "ns-"+last, shared.Spec.Scope, "spec of the last applied change")
	assert.Equal(t, "cred-VALUE-"+last, creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"], "credentials of the same change")

	for w := range writers {
		own, err := s.Get(ctx, fmt.Sprintf("own%d", w))
		require.NoError(t, err)
		assert.EqualValues(t, perWriter, own.Generation)
	}
	all, err := s.List(ctx)
	require.NoError(t, err)
	assert.Len(t, all, writers+1)
}

// TestStatusWritersDoNotClobberSpecWriters: an sc-job-like status writer and
// the agent-like spec writer race; neither loses the other's change.
func TestStatusWritersDoNotClobberSpecWriters(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, _, err := s.Apply(ctx, change("racy", "r0", "a", "cred-VALUE-0"))
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 1; i <= 10; i++ {
			_, _, err := s.Apply(ctx, change("racy", fmt.Sprint("r", i), fmt.Sprint("ns", i), "cred-VALUE-0"))
			assert.NoError(t, err)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			_, err := s.UpdateStatus(ctx, "racy", func(c *connection.Connection) error {
				c.Status.Message = fmt.Sprint("job pass ", i)
				return nil
			})
			assert.NoError(t, err)
		}
	}()
	wg.Wait()
	got, err := s.Get(ctx, "racy")
	require.NoError(t, err)
	assert.EqualValues(t, 11, got.Generation)
	assert.Equal(t, "ns10", got.Spec.Scope)
}
