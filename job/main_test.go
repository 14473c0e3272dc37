package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUsageErrorsExitTwo(t *testing.T) {
	assert.Equal(t, exitUsage, run([]string{"--no-such-flag"}))
	assert.Equal(t, exitUsage, run([]string{"--log-level=loud"}))
	assert.Equal(t, exitUsage, run([]string{"--namespace="}))
	// Outside a cluster and without a kubeconfig there is nothing to talk to.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	assert.Equal(t, exitUsage, run([]string{"--kubeconfig="}))
}
