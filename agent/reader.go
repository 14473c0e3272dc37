package main

import (
	"context"

	"github.com/rs/zerolog"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// reader answers queries from the store and validates in-cluster state.
type reader struct {
	*store.Store
	client kubernetes.Interface
	dyn    dynamic.Interface
	log    zerolog.Logger
}

// Validate compares the rendered objects with the stored connection. The
// credential values are read only so that inspect can compare hashes;
// without them (a half-written record) it checks key presence instead.
func (r reader) Validate(ctx context.Context, c connection.Connection) (protocol.ValidateResult, error) {
	creds, err := r.Credentials(ctx, c)
	if err != nil {
		r.log.Debug().Err(err).Str("objectId", c.Spec.ID()).Msg("validating without credential hashes")
		creds = nil
	}
	return inspect.Validate(ctx, r.client, r.dyn, c, creds), nil
}
