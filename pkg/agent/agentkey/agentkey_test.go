package agentkey

import (
	"context"
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const ns = "sc-system"

// getKey and createKey are the only actions Load ever makes.
const (
	getKey    = "get secrets " + ns + "/" + SecretName
	createKey = "create secrets " + ns + "/" + SecretName
)

func existingKey(t *testing.T) (nkeys.KeyPair, *corev1.Secret) {
	t.Helper()
	kp, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	return kp, newSecret(ns, seed)
}

func publicKey(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	return pub
}

func TestLoadCreatesSecretWhenMissing(t *testing.T) {
	c := fake.NewClientset()
	kp, err := Load(context.Background(), c, ns)
	require.NoError(t, err)
	assert.Equal(t, []string{getKey, createKey}, fakeactions.Of(c))

	stored, err := c.CoreV1().Secrets(ns).Get(context.Background(), SecretName, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "sc-extension", stored.Labels["app.kubernetes.io/managed-by"])
	again, err := fromSecret(stored)
	require.NoError(t, err)
	assert.Equal(t, publicKey(t, kp), publicKey(t, again), "the stored seed is the returned key's")
	assert.True(t, nkeys.IsValidPublicCurveKey(publicKey(t, kp)))
}

func TestLoadCreateCarriesFieldManager(t *testing.T) {
	c := fake.NewClientset()
	var manager string
	c.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		manager = a.(k8stesting.CreateActionImpl).CreateOptions.FieldManager
		return false, nil, nil
	})
	_, err := Load(context.Background(), c, ns)
	require.NoError(t, err)
	assert.Equal(t, connection.FieldManager, manager)
}

func TestLoadReusesExistingKey(t *testing.T) {
	want, secret := existingKey(t)
	c := fake.NewClientset(secret)
	got, err := Load(context.Background(), c, ns)
	require.NoError(t, err)
	assert.Equal(t, publicKey(t, want), publicKey(t, got))
	assert.Equal(t, []string{getKey}, fakeactions.Of(c))
}

// Two replicas start together: this one's Get misses, the other's Create
// wins, so this Create gets AlreadyExists and the winner's key must be used.
func TestLoadLosesCreateRace(t *testing.T) {
	winner, secret := existingKey(t)
	c := fake.NewClientset()
	c.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		require.NoError(t, c.Tracker().Add(secret))
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, SecretName)
	})
	got, err := Load(context.Background(), c, ns)
	require.NoError(t, err)
	assert.Equal(t, publicKey(t, winner), publicKey(t, got))
	assert.Equal(t, []string{
		getKey,
		createKey,
		getKey,
	}, fakeactions.Of(c))
}

func TestLoadRefusesCorruptSecretWithoutLeakingIt(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":   nil,
		"garbage": []byte("SX-not-a-seed-cred-VALUE-x1"),
		"user seed": func() []byte {
			u, _ := nkeys.CreateUser()
			s, _ := u.Seed()
			return s
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			s := newSecret(ns, data)
			c := fake.NewClientset(s)
			_, err := Load(context.Background(), c, ns)
			require.ErrorIs(t, err, ErrBadKey)
			if len(data) > 0 {
				assert.NotContains(t, err.Error(), string(data))
			}
			assert.Equal(t, []string{getKey}, fakeactions.Of(c), "never overwritten")
		})
	}
}

func TestLoadPropagatesAPIErrors(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, SecretName, nil)
	})
	_, err := Load(context.Background(), c, ns)
	require.Error(t, err)
	assert.True(t, apierrors.IsForbidden(err), "wrapped with %%w")
	assert.Equal(t, []string{getKey}, fakeactions.Of(c))
}
