//go:build integration

package jobrun_integration

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Eight writers apply changes to one shared connection and to one of their
// own each. With real resourceVersion conflicts: no lost update, generations
// strictly increase per writer, and the final record's credential Secret is
// the one its spec was written with (never a mix of two writers).
func TestStoreConcurrentWriters(t *testing.T) {
	e := setup(t)
	const writers, rounds = 8, 6
	type applied struct {
		gen   int64
		label string
	}
	var mu sync.Mutex
	var shared []applied
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64
			for r := range rounds {
				for _, name := range []string{"shared", fmt.Sprintf("own%d", w)} {
					ch := e.secretChange(name)
					label := fmt.Sprintf("w%d-r%d", w, r)
					ch.Spec.Labels = map[string]string{"writer": label}
					c, ok, err := e.store.Apply(e.ctx, ch)
					if err != nil {
						errs <- err
						return
					}
					if !ok {
						errs <- fmt.Errorf("%s: a fresh request id was not applied", label)
						return
					}
					if name == "shared" {
						if c.Generation <= last {
							errs <- fmt.Errorf("%s: generation %d after %d", label, c.Generation, last)
						}
						last = c.Generation
						mu.Lock()
						shared = append(shared, applied{gen: c.Generation, label: label})
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	final := e.get("shared")
	// Every change differs, so every applied change bumped the generation:
	// a lost update would leave fewer.
	assert.Equal(t, int64(writers*rounds), final.Generation, "one generation per applied change")
	gens := map[int64]string{}
	for _, a := range shared {
		if prev, dup := gens[a.gen]; dup {
			t.Errorf("generation %d returned to both %s and %s", a.gen, prev, a.label)
		}
		gens[a.gen] = a.label
	}
	assert.Equal(t, gens[final.Generation], final.Spec.Labels["writer"], "the record holds the newest change")

	creds, err := e.store.Credentials(e.ctx, final)
	require.NoError(t, err, "the final pair is consistent")
	assert.Len(t, creds, 1)
	assert.Equal(t, final.CredentialsVersion, final.Status.LastRequestID, "credentials written by the same request as the spec")

	for w := range writers {
		own := e.get(fmt.Sprintf("own%d", w))
		assert.Equal(t, int64(rounds), own.Generation)
		assert.Equal(t, fmt.Sprintf("w%d-r%d", w, rounds-1), own.Spec.Labels["writer"])
		_, err := e.store.Credentials(e.ctx, own)
		assert.NoError(t, err)
	}

	// A redelivered request changes nothing.
	again := e.secretChange("shared")
	again.RequestID = final.Status.LastRequestID
	c, ok, err := e.store.Apply(e.ctx, again)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, final.Generation, c.Generation)
	_ = connection.PhasePending
}
