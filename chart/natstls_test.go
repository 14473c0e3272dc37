package chart

import (
	"path"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// secretMount is one Secret the agent container mounts: the volume and where
// it lands.
type secretMount struct {
	volume corev1.SecretVolumeSource
	mount  corev1.VolumeMount
}

// agentSecretMounts maps each Secret volume's name to its source and its
// single mount in the agent container.
func agentSecretMounts(t *testing.T, d *appsv1.Deployment) map[string]secretMount {
	t.Helper()
	pod := d.Spec.Template.Spec
	out := map[string]secretMount{}
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			continue
		}
		var mounts []corev1.VolumeMount
		for _, m := range pod.Containers[0].VolumeMounts {
			if m.Name == v.Name {
				mounts = append(mounts, m)
			}
		}
		require.Len(t, mounts, 1, "Secret volume %s is mounted once", v.Name)
		out[v.Name] = secretMount{volume: *v.Secret, mount: mounts[0]}
	}
	return out
}

// assertFileIn checks a flag names a file directly inside a mount of the
// Secret, mounted read-only as a whole directory: a subPath mount would
// never see a renewed Secret, and the agent re-reads the files on every
// reconnect precisely to pick renewals up.
func assertFileIn(t *testing.T, mounts map[string]secretMount, secret, key, file string) {
	t.Helper()
	require.NotEmpty(t, file, "flag for %s/%s", secret, key)
	for name, m := range mounts {
		if m.volume.SecretName != secret || path.Dir(file) != m.mount.MountPath {
			continue
		}
		assert.Empty(t, m.mount.SubPath, "%s: subPath mounts never update", name)
		assert.True(t, m.mount.ReadOnly, name)
		assert.Contains(t, m.volume.Items, corev1.KeyToPath{Key: key, Path: path.Base(file)}, name)
		return
	}
	t.Errorf("%s is not inside a mount of Secret %s (mounts %+v)", file, secret, mounts)
}

func TestNATSTLSMountsAndFlags(t *testing.T) {
	tlsFlags := []string{"--nats-ca-file", "--nats-cert-file", "--nats-key-file"}
	t.Run("defaults pass no TLS flag and mount no Secret", func(t *testing.T) {
		d := find[*appsv1.Deployment](t, render(t, minimal()), "sc-agent")
		args := argMap(d.Spec.Template.Spec.Containers[0].Args)
		for _, f := range tlsFlags {
			assert.NotContains(t, args, f)
		}
		assert.Empty(t, agentSecretMounts(t, d))
	})
	t.Run("CA only verifies the server, no client certificate", func(t *testing.T) {
		d := find[*appsv1.Deployment](t, render(t, with(map[string]any{"nats.tls.caSecret": "nats-ca"})), "sc-agent")
		args := argMap(d.Spec.Template.Spec.Containers[0].Args)
		mounts := agentSecretMounts(t, d)
		require.Len(t, mounts, 1)
		assertFileIn(t, mounts, "nats-ca", "ca.crt", args["--nats-ca-file"])
		assert.NotContains(t, args, "--nats-cert-file")
		assert.NotContains(t, args, "--nats-key-file")
	})
	t.Run("client certificate alone passes cert and key together", func(t *testing.T) {
		d := find[*appsv1.Deployment](t, render(t, with(map[string]any{"nats.tls.clientSecret": "sc-agent-nats-tls"})), "sc-agent")
		args := argMap(d.Spec.Template.Spec.Containers[0].Args)
		mounts := agentSecretMounts(t, d)
		require.Len(t, mounts, 1)
		assertFileIn(t, mounts, "sc-agent-nats-tls", "tls.crt", args["--nats-cert-file"])
		assertFileIn(t, mounts, "sc-agent-nats-tls", "tls.key", args["--nats-key-file"])
		assert.NotContains(t, args, "--nats-ca-file")
	})
	t.Run("CA, client certificate and creds file side by side", func(t *testing.T) {
		// cert-manager writes ca.crt into the certificate's own Secret, so
		// the same Secret may serve both.
		d := find[*appsv1.Deployment](t, render(t, with(map[string]any{
			"nats.tls.caSecret": "sc-agent-nats-tls", "nats.tls.clientSecret": "sc-agent-nats-tls",
			"nats.credentialsSecret": "sc-nats", "nats.credentialsFormat": "creds",
		})), "sc-agent")
		c := d.Spec.Template.Spec.Containers[0]
		args := argMap(c.Args)
		mounts := agentSecretMounts(t, d)
		require.Len(t, mounts, 3)
		assertFileIn(t, mounts, "sc-agent-nats-tls", "ca.crt", args["--nats-ca-file"])
		assertFileIn(t, mounts, "sc-agent-nats-tls", "tls.crt", args["--nats-cert-file"])
		assertFileIn(t, mounts, "sc-agent-nats-tls", "tls.key", args["--nats-key-file"])
		assertFileIn(t, mounts, "sc-nats", "creds", args["--nats-creds"])
		paths := map[string]bool{}
		for _, m := range c.VolumeMounts {
			assert.False(t, paths[m.MountPath], "two volumes at %s", m.MountPath)
			paths[m.MountPath] = true
		}
		// The files come only from the mounts: no key material or path in env.
		for _, e := range c.Env {
			assert.NotContains(t, e.Name, "NATS")
		}
	})
}

// NOTES.txt tells the installer which Secrets the agent's TLS comes from,
// and says nothing of TLS when none is configured.
func TestNotesNameTheTLSSecrets(t *testing.T) {
	n := render(t, with(map[string]any{"nats.credentialsSecret": "sc-nats",
		"nats.tls.caSecret": "nats-ca", "nats.tls.clientSecret": "sc-agent-nats-tls"})).notes
	assert.Contains(t, n, "with the credentials in Secret sc-system/sc-nats, over TLS, "+
		"verifying the server with the CA in Secret sc-system/nats-ca, "+
		"presenting the client certificate in Secret sc-system/sc-agent-nats-tls.\n")
	n = render(t, with(map[string]any{"nats.tls.caSecret": "nats-ca"})).notes
	assert.Contains(t, n, "without credentials, over TLS, verifying the server with the CA in Secret sc-system/nats-ca.\n")
	assert.Contains(t, render(t, minimal()).notes, "The agent connects to nats://10.0.0.5:4222 without credentials.\n")
}
