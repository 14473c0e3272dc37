package devserver_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

func TestClusterOptionsValidate(t *testing.T) {
	ok := devserver.ClusterOptions{Name: "sc", ServerName: "n1", Listen: "127.0.0.1:6222",
		Routes: []string{"nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223"}, Replicas: 3}
	require.NoError(t, ok.Validate())
	require.NoError(t, devserver.ClusterOptions{}.Validate(), "the zero value is a single server")
	require.NoError(t, devserver.ClusterOptions{LeafListen: "0.0.0.0:7422"}.Validate(), "a single server may be a leaf node hub")

	for name, mutate := range map[string]func(*devserver.ClusterOptions){
		"no server name":       func(o *devserver.ClusterOptions) { o.ServerName = "" },
		"listener port 0":      func(o *devserver.ClusterOptions) { o.Listen = "127.0.0.1:0" },
		"listener without one": func(o *devserver.ClusterOptions) { o.Listen = "" },
		"client URL as a peer": func(o *devserver.ClusterOptions) { o.Routes = []string{"nats://127.0.0.1:4222"} },
		"six replicas":         func(o *devserver.ClusterOptions) { o.Replicas = 6 },
		"peers without a name": func(o *devserver.ClusterOptions) { o.Name = "" },
		"leaf port 0":          func(o *devserver.ClusterOptions) { o.LeafListen = "127.0.0.1:0" },
	} {
		o := ok
		mutate(&o)
		assert.ErrorIs(t, o.Validate(), devserver.ErrClusterOptions, name)
	}
}

func TestLeafListenerNeedsPasswordAuth(t *testing.T) {
	_, err := devserver.Start(context.Background(), devserver.Options{StoreDir: t.TempDir(),
		Auth: devserver.AuthOptions{Mode: devserver.AuthJWT}, Cluster: devserver.ClusterOptions{LeafListen: "127.0.0.1:7422"}})
	assert.ErrorIs(t, err, devserver.ErrClusterOptions)
}
