package eso

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const crdYAML = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %s
spec: {}
`

// fakeModule lays out what Build reads of ESO's module: CRDs beside a
// kustomization.yaml, and a main package.
func fakeModule(t *testing.T) string {
	dir := t.TempDir()
	bases := filepath.Join(dir, crdDir)
	require.NoError(t, os.MkdirAll(bases, 0o755))
	for _, n := range []string{"b.example.io", "a.example.io"} {
		require.NoError(t, os.WriteFile(filepath.Join(bases, n+".yaml"), []byte(strings.Replace(crdYAML, "%s", n, 1)), 0o444))
	}
	require.NoError(t, os.WriteFile(filepath.Join(bases, "kustomization.yaml"), []byte("resources: []\n"), 0o444))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o444))
	return dir
}

func fakeOptions(t *testing.T, module string, compiles *int) Options {
	return Options{
		CacheDir: t.TempDir(),
		download: func(context.Context, string) (string, error) { return module, nil },
		compile: func(_ context.Context, src, out string) error {
			*compiles++
			// the copy is writable: go build may need to write go.sum entries
			if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main // built\n"), 0o644); err != nil {
				return err
			}
			return os.WriteFile(out, []byte("#!/bin/sh\n"), 0o755)
		},
	}
}

func TestBuildKeepsBinaryAndCRDsButNotKustomization(t *testing.T) {
	compiles := 0
	o := fakeOptions(t, fakeModule(t), &compiles)
	r, err := Build(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 1, compiles)
	entry := filepath.Join(o.CacheDir, "eso-"+Version)
	assert.Equal(t, filepath.Join(entry, binaryName), r.Binary)
	assert.Equal(t, []string{filepath.Join(entry, "crds", "a.example.io.yaml"), filepath.Join(entry, "crds", "b.example.io.yaml")}, r.CRDs)
	_, err = os.Stat(filepath.Join(entry, "src"))
	assert.True(t, os.IsNotExist(err), "the source copy is not kept")
	crds, err := LoadCRDs(r.CRDs)
	require.NoError(t, err)
	assert.Equal(t, "a.example.io", crds[0].GetName())
}

func TestBuildReusesCompleteEntryAndRebuildsIncompleteOne(t *testing.T) {
	compiles := 0
	o := fakeOptions(t, fakeModule(t), &compiles)
	_, err := Build(context.Background(), o)
	require.NoError(t, err)
	_, err = Build(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 1, compiles, "a complete entry is reused")

	require.NoError(t, os.Remove(filepath.Join(o.CacheDir, "eso-"+Version, manifestFile)))
	_, err = Build(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 2, compiles, "an entry without its manifest is built again")
}

func TestFailedBuildLeavesNoEntry(t *testing.T) {
	compiles := 0
	o := fakeOptions(t, fakeModule(t), &compiles)
	o.compile = func(context.Context, string, string) error { return errors.New("compiler exploded") }
	_, err := Build(context.Background(), o)
	require.ErrorContains(t, err, "compiler exploded")
	ents, err := os.ReadDir(o.CacheDir)
	require.NoError(t, err)
	for _, e := range ents {
		assert.False(t, e.IsDir(), "left %s behind", e.Name())
	}
}

func TestLoadCRDsRefusesOtherKinds(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x.yaml")
	require.NoError(t, os.WriteFile(f, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"), 0o644))
	_, err := LoadCRDs([]string{f})
	require.ErrorIs(t, err, ErrNotCRD)
}

func TestObjectsReadTheFakeStore(t *testing.T) {
	store := FakeClusterSecretStore("bench", map[string]string{"b": "2", "a": "1"})
	data, _, _ := unstructured.NestedSlice(store.Object, "spec", "provider", "fake", "data")
	assert.Equal(t, []any{map[string]any{"key": "a", "value": "1"}, map[string]any{"key": "b", "value": "2"}}, data)

	es := ExternalSecret("ns1", "es1", "bench", "sec1", "secret")
	assert.Equal(t, "ns1", es.GetNamespace())
	ref, _, _ := unstructured.NestedStringMap(es.Object, "spec", "secretStoreRef")
	assert.Equal(t, map[string]string{"name": "bench", "kind": "ClusterSecretStore"}, ref)
	target, _, _ := unstructured.NestedStringMap(es.Object, "spec", "target")
	assert.Equal(t, map[string]string{"name": "sec1", "creationPolicy": "Owner"}, target)
	got, _, _ := unstructured.NestedSlice(es.Object, "spec", "dataFrom")
	assert.Equal(t, []any{map[string]any{"extract": map[string]any{"key": "secret"}}}, got)
}

// TestProcessGetsKubeconfigAndBaseArgs runs a stand-in for ESO that
// prints what it was given, then waits to be stopped.
func TestProcessGetsKubeconfigAndBaseArgs(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-eso")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\necho \"KUBECONFIG=$KUBECONFIG args=$*\"\nexec sleep 600\n"), 0o755))
	log := filepath.Join(dir, "eso.log")
	p, err := Start(bin, "/some/kubeconfig", log, "--concurrent=50")
	require.NoError(t, err)
	require.NoError(t, p.Err(), "running")
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "args=")
	}, 10*time.Second, 20*time.Millisecond)
	p.Stop(5 * time.Second)
	<-p.Exited()
	require.ErrorIs(t, p.Err(), ErrExited)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "KUBECONFIG=/some/kubeconfig args=--metrics-addr=0 --concurrent=50\n", string(b))
	p.Stop(time.Second) // a second Stop after the end returns
}

// TestBuildFromTheModuleProxy builds the real ESO into the project's cache
// (about 8 minutes on 2 cores when cold); only when SC_ESO_BUILD=1, so that
// `make test` never pays for it. `make bench` builds it anyway.
func TestBuildFromTheModuleProxy(t *testing.T) {
	if os.Getenv("SC_ESO_BUILD") != "1" {
		t.Skip("set SC_ESO_BUILD=1 to build External Secrets Operator from the module proxy")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	r, err := Build(ctx, Options{Logf: t.Logf})
	require.NoError(t, err)
	out, err := exec.CommandContext(ctx, r.Binary, "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, flag := range []string{"--concurrent", "--client-qps", "--client-burst", "--metrics-addr"} {
		assert.Contains(t, string(out), flag)
	}
	crds, err := LoadCRDs(r.CRDs)
	require.NoError(t, err)
	var names []string
	for _, c := range crds {
		names = append(names, c.GetName())
	}
	assert.Contains(t, names, "externalsecrets.external-secrets.io")
	assert.Contains(t, names, "clustersecretstores.external-secrets.io")
}
