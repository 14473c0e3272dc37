package helmrelease

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

const (
	marker   = "e2e.sc-extension.io/run"
	selector = "app.kubernetes.io/managed-by=sc-extension,servicelinker.sc-extension.io/connection"
	ns       = "sc-system"
)

var recordLabels = map[string]string{"app.kubernetes.io/managed-by": "sc-extension", "servicelinker.sc-extension.io/connection": "x"}

// fakeHelm answers `helm get values` with getValues and records every call;
// on upgrade it captures the values file, which Restore deletes afterwards.
type fakeHelm struct {
	getValues string
	getErr    error
	calls     [][]string
	upgraded  map[string]any
}

func (h *fakeHelm) run(_ context.Context, args ...string) (string, error) {
	h.calls = append(h.calls, args)
	switch args[0] {
	case "get":
		return h.getValues, h.getErr
	case "upgrade":
		for i, a := range args {
			if a == "-f" {
				b, err := os.ReadFile(args[i+1])
				if err != nil {
					return "", err
				}
				if err := json.Unmarshal(b, &h.upgraded); err != nil {
					return "", err
				}
			}
		}
	}
	return "", nil
}

func opts(h *fakeHelm, objs ...any) Options {
	cs := fake.NewClientset()
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.Secret:
			_, _ = cs.CoreV1().Secrets(v.Namespace).Create(context.Background(), v, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			_, _ = cs.CoreV1().ConfigMaps(v.Namespace).Create(context.Background(), v, metav1.CreateOptions{})
		}
	}
	return Options{Helm: h.run, Client: cs, Release: "sc-extension", Namespace: ns, Marker: marker, RecordSelector: selector}
}

func TestForeign(t *testing.T) {
	assert.True(t, Foreign(map[string]any{}, marker), "chart defaults")
	assert.True(t, Foreign(map[string]any{"podAnnotations": map[string]any{"other": "x"}}, marker))
	assert.True(t, Foreign(map[string]any{"podAnnotations": "not a map"}, marker))
	assert.False(t, Foreign(map[string]any{"podAnnotations": map[string]any{marker: "r1234"}}, marker))
}

func TestTakeNothingToGiveBack(t *testing.T) {
	for name, h := range map[string]*fakeHelm{
		"no release":                 {getValues: "Error: release: not found\n", getErr: errors.New("exit status 1")},
		"an earlier suite's release": {getValues: `{"podAnnotations":{"` + marker + `":"r0"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Take(context.Background(), opts(h))
			require.NoError(t, err)
			assert.Nil(t, s)
			assert.Equal(t, [][]string{{"get", "values", "sc-extension", "-n", ns, "-o", "json"}}, h.calls)
		})
	}
}

func TestTakeFailsOnOtherHelmErrors(t *testing.T) {
	h := &fakeHelm{getValues: "Error: Kubernetes cluster unreachable", getErr: errors.New("exit status 1")}
	_, err := Take(context.Background(), opts(h))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cluster unreachable")
}

// The demo's release is borrowed and given back exactly: its values (and
// not the suite's), its NATS credentials Secret and its records, while the
// suite's leftover records are removed.
func TestTakeAndRestoreTheDemosRelease(t *testing.T) {
	ctx := context.Background()
	demoValues := `{"cluster":{"id":"demo"},"nats":{"url":"nats://10.1.2.3:4222","credentialsSecret":"sc-nats-credentials"}}`
	h := &fakeHelm{getValues: demoValues}
	demoCred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sc-nats-credentials", Namespace: ns, Labels: map[string]string{"from": "demo"}},
		Data: map[string][]byte{"user": []byte("demo"), "password": []byte("demo-password-VALUE")}}
	demoRecord := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sc-conn-demo", Namespace: ns, Labels: recordLabels,
		ResourceVersion: "42", UID: "u1"}, Data: map[string]string{"spec": "demo"}}
	demoRecordCred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sc-conn-demo-cred", Namespace: ns, Labels: recordLabels},
		Data: map[string][]byte{"k": []byte("demo-cred-VALUE")}}
	o := opts(h, demoCred, demoRecord, demoRecordCred)

	s, err := Take(ctx, o)
	require.NoError(t, err)
	require.NotNil(t, s)
	desc := s.Describe()
	assert.Equal(t, "release sc-system/sc-extension (values: cluster,nats; credentials Secret: sc-nats-credentials; 1 records)", desc)

	// What the suite does meanwhile: its own credentials and records.
	cs := o.Client.CoreV1()
	require.NoError(t, cs.Secrets(ns).Delete(ctx, "sc-nats-credentials", metav1.DeleteOptions{}))
	_, err = cs.Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sc-nats-credentials", Namespace: ns},
		Data: map[string][]byte{"user": []byte("e2e")}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, cs.ConfigMaps(ns).Delete(ctx, "sc-conn-demo", metav1.DeleteOptions{}))
	_, err = cs.ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sc-conn-leftover", Namespace: ns, Labels: recordLabels}}, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, s.Restore(ctx, "/repo/chart"))

	up := h.calls[len(h.calls)-1]
	require.Len(t, up, len(UpgradeArgs("", "", "", "")))
	assert.Equal(t, []string{"upgrade", "--install", "sc-extension", "/repo/chart", "-n", ns, "--reset-values", "-f"}, up[:8])
	assert.Equal(t, []string{"--wait", "--timeout", "3m"}, up[9:])
	var want map[string]any
	require.NoError(t, json.Unmarshal([]byte(demoValues), &want))
	assert.Equal(t, want, h.upgraded, "upgraded with exactly the demo's values")
	_, err = os.Stat(up[8])
	assert.True(t, os.IsNotExist(err), "the values file is removed")

	sec, err := cs.Secrets(ns).Get(ctx, "sc-nats-credentials", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, demoCred.Data, sec.Data)
	assert.Equal(t, demoCred.Labels, sec.Labels)
	cms, err := cs.ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	require.Len(t, cms.Items, 1, "the suite's leftover is gone, the demo's record is back")
	assert.Equal(t, "sc-conn-demo", cms.Items[0].Name)
	assert.Equal(t, demoRecord.Data, cms.Items[0].Data)
	got, err := cs.Secrets(ns).Get(ctx, "sc-conn-demo-cred", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, demoRecordCred.Data, got.Data)

	assert.NotContains(t, desc, "VALUE", "no credential in what is logged")
}

func TestRestoreReportsAFailedUpgradeWithoutValues(t *testing.T) {
	h := &fakeHelm{getValues: `null`}
	o := opts(h)
	s, err := Take(context.Background(), o)
	require.NoError(t, err)
	require.NotNil(t, s, "a release installed with chart defaults is still someone's")
	o.Helm = func(_ context.Context, args ...string) (string, error) {
		return "Error: context deadline exceeded", errors.New("exit status 1")
	}
	s.opts = o
	err = s.Restore(context.Background(), "/repo/chart")
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "helm upgrade sc-extension back to its own values: exit status 1: Error: context deadline exceeded"), err.Error())
}
