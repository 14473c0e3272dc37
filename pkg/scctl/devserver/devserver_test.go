package devserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func TestCredentialsAreWrittenAndSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv := devservertest.Start(t, devserver.Options{StoreDir: dir, Clusters: []string{"c1"}})
	before, _ := srv.Cluster("c1")
	admin := srv.Admin()
	assert.Equal(t, "agent-c1", before.User)
	assert.NotContains(t, before.String()+admin.String(), before.Password, "String redacts")

	path := devserver.SecretManifestPath(dir, "c1")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var s corev1.Secret
	require.NoError(t, yaml.UnmarshalStrict(raw, &s))
	assert.Equal(t, devserver.SecretName, s.Name)
	assert.Equal(t, map[string]string{"user": before.User, "password": before.Password}, s.StringData, "the chart's userPassword format")

	require.NoError(t, srv.Restart(context.Background()))
	after, _ := srv.Cluster("c1")
	assert.Equal(t, before, after)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(before.User, before.Password), nats.CustomInboxPrefix(protocol.InboxPrefix("c1")))
	require.NoError(t, err, "old password still valid after restart")
	nc.Close()

	// A second server on the same StoreDir (after this one stops) keeps them too.
	srv.Shutdown()
	again := devservertest.Start(t, devserver.Options{StoreDir: dir, Clusters: []string{"c1", "c2"}})
	same, _ := again.Cluster("c1")
	assert.Equal(t, before, same)
	assert.Equal(t, admin, again.Admin())
	_, ok := again.Cluster("c2")
	assert.True(t, ok)
	nc, err = nats.Connect(again.AdminURL())
	require.NoError(t, err, "AdminURL embeds working credentials")
	nc.Close()
}

func TestRejectsBadClusterAndAuthenticates(t *testing.T) {
	_, err := devserver.Start(context.Background(), devserver.Options{StoreDir: t.TempDir(), Clusters: []string{"Bad.Cluster"}})
	require.Error(t, err)

	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	_, err = nats.Connect(srv.ClientURL(), nats.Timeout(2*time.Second))
	require.Error(t, err, "anonymous clients are refused")
	_, err = nats.Connect(srv.ClientURL(), nats.UserInfo("agent-c1", "wrong"), nats.Timeout(2*time.Second))
	require.Error(t, err)
}

// docs/nats-permissions.md shows the exact block ClusterPermissions grants.
func TestDocsShowTheGrantedPermissions(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "nats-permissions.md"))
	require.NoError(t, err)
	assert.Contains(t, string(doc), devserver.ConfigBlock("c1"))
	for _, s := range devserver.ClusterPermissions("c1").Publish.Allow {
		assert.True(t, strings.HasPrefix(s, "sc.v1.c1.") || strings.Contains(s, "agent-c1"), s)
	}
}

// ConfigBlock is what an operator pastes into nats-server.conf: parsed by
// nats-server itself it must grant exactly ClusterPermissions.
func TestConfigBlockParsesToClusterPermissions(t *testing.T) {
	t.Setenv(devserver.PasswordVar("my-cluster"), "from-env")
	conf := filepath.Join(t.TempDir(), "nats.conf")
	require.NoError(t, os.WriteFile(conf, []byte("authorization {\n users: [\n"+devserver.ConfigBlock("my-cluster")+" ]\n}\n"), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	require.NoError(t, err)
	require.Len(t, opts.Users, 1)
	u := opts.Users[0]
	assert.Equal(t, "agent-my-cluster", u.Username)
	assert.Equal(t, "from-env", u.Password)
	assert.Equal(t, devserver.ClusterPermissions("my-cluster"), u.Permissions)
}
