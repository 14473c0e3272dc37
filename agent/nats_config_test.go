package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/tlstest"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

func withArgs(extra ...string) []string {
	return append(chartArgs[:len(chartArgs):len(chartArgs)], extra...)
}

func TestNATSTLSFlagsAndEnvironment(t *testing.T) {
	pki := tlstest.New(t)
	env := map[string]string{"POD_NAME": "p"}
	want := natsbus.TLSFiles{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}

	cfg, _, err := parseConfig(withArgs("--nats-ca-file="+pki.CAFile, "--nats-cert-file="+pki.ClientCert, "--nats-key-file="+pki.ClientKey), envOf(env))
	require.NoError(t, err)
	assert.Equal(t, want, cfg.NATSTLS)

	env["SC_NATS_CA_FILE"], env["SC_NATS_CERT_FILE"], env["SC_NATS_KEY_FILE"] = pki.CAFile, pki.ClientCert, pki.ClientKey
	cfg, _, err = parseConfig(chartArgs, envOf(env))
	require.NoError(t, err)
	assert.Equal(t, want, cfg.NATSTLS, "SC_NATS_* set the same files")

	var buf bytes.Buffer
	logStart(zerolog.New(&buf), cfg, "")
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	assert.Equal(t, "client certificate "+pki.ClientCert, line["natsTLS"])
	key, err := os.ReadFile(pki.ClientKey)
	require.NoError(t, err)
	assert.NotContains(t, buf.String(), string(key))
}

// A broken TLS setting stops the agent at start with a usage error naming
// the flag and the file, never the key.
func TestNATSTLSFlagErrors(t *testing.T) {
	pki := tlstest.New(t)
	key, err := os.ReadFile(pki.OtherClientKey)
	require.NoError(t, err)
	missing := filepath.Join(t.TempDir(), "missing-ca.crt")
	for name, tt := range map[string]struct {
		args     []string
		mentions []string
	}{
		"cert without key": {[]string{"--nats-cert-file=" + pki.ClientCert}, []string{"--nats-cert-file and --nats-key-file", "set together"}},
		"key without cert": {[]string{"--nats-key-file=" + pki.ClientKey}, []string{"--nats-cert-file and --nats-key-file"}},
		"missing CA":       {[]string{"--nats-ca-file=" + missing}, []string{"--nats-ca-file", missing, "no such file"}},
		"CA is a key":      {[]string{"--nats-ca-file=" + pki.ClientKey}, []string{"--nats-ca-file", pki.ClientKey, "no PEM certificate"}},
		"key of another certificate": {[]string{"--nats-cert-file=" + pki.ClientCert, "--nats-key-file=" + pki.OtherClientKey},
			[]string{"--nats-cert-file/--nats-key-file", pki.OtherClientKey, "private key does not match"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := parseConfig(withArgs(tt.args...), envOf(map[string]string{"POD_NAME": "p"}))
			require.ErrorIs(t, err, errUsage)
			for _, m := range tt.mentions {
				assert.Contains(t, err.Error(), m)
			}
			assert.NotContains(t, err.Error(), string(key))
			assert.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}
}
