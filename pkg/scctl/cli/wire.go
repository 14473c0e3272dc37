package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// maxQueryTimeout bounds each query and publish: an agent answers in
// milliseconds, so a long --timeout (meant for waiting on sc-job) must not
// turn "agent hung" into a long silence.
const maxQueryTimeout = 10 * time.Second

// dialControlPlane is App.Dial's production value.
func dialControlPlane(ctx context.Context, o DialOptions) (ControlPlane, error) {
	c, err := controlplane.Dial(ctx, controlplane.Options{
		URL: o.URL, User: o.User, Password: o.Password, CredsFile: o.CredsFile,
		Cluster: o.Cluster, Timeout: min(o.Timeout, maxQueryTimeout), TLS: o.TLS,
	})
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", redactURL(o.URL), err)
	}
	return c, nil
}

// isUnreachable is App.Unreachable's production value: an agent that has
// never sent a heartbeat is as unreachable as one that does not answer.
func isUnreachable(err error) bool {
	return errors.Is(err, controlplane.ErrAgentUnreachable) || errors.Is(err, controlplane.ErrNoHeartbeat)
}

func isServerUnreachable(err error) bool { return errors.Is(err, controlplane.ErrServerUnreachable) }

// redactURL hides the password of every URL in a --server list before it
// is printed.
func redactURL(s string) string { return natsbus.RedactURLs(s) }
