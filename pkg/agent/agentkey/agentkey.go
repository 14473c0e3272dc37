package agentkey

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const (
	// SecretName is the Secret holding the agent's key in its namespace.
	SecretName = "sc-agent-key"
	// SeedKey is the data key of the curve seed.
	SeedKey = "seed"
)

// ErrBadKey: the Secret exists but does not hold a curve seed. Replacing it
// would strand every request sealed to the old key, so Load refuses and an
// operator decides (deleting the Secret makes a new key).
var ErrBadKey = errors.New("sc-agent-key does not hold a curve key seed")

// Load returns the agent's key pair, creating the Secret with a fresh seed
// if it does not exist. Replicas that race to create it all end up with the
// winner's key: a loser's AlreadyExists is answered by reading it back.
func Load(ctx context.Context, client kubernetes.Interface, namespace string) (nkeys.KeyPair, error) {
	secrets := client.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, SecretName, metav1.GetOptions{})
	switch {
	case err == nil:
		return fromSecret(s)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get %s/%s: %w", namespace, SecretName, err)
	}
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		return nil, fmt.Errorf("generate curve key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("curve seed: %w", err)
	}
	_, err = secrets.Create(ctx, newSecret(namespace, seed), metav1.CreateOptions{FieldManager: connection.FieldManager})
	switch {
	case err == nil:
		return kp, nil
	case !apierrors.IsAlreadyExists(err):
		return nil, fmt.Errorf("create %s/%s: %w", namespace, SecretName, err)
	}
	s, err = secrets.Get(ctx, SecretName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s/%s after losing the create race: %w", namespace, SecretName, err)
	}
	return fromSecret(s)
}

func newSecret(namespace string, seed []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      SecretName,
			Namespace: namespace,
			Labels:    map[string]string{connection.LabelManagedBy: connection.ManagedByValue},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{SeedKey: seed},
	}
}

// fromSecret never puts the seed into an error: nkeys errors do not quote
// their input, and ours name only the Secret.
func fromSecret(s *corev1.Secret) (nkeys.KeyPair, error) {
	seed := s.Data[SeedKey]
	if len(seed) == 0 {
		return nil, fmt.Errorf("%s/%s has no %q key: %w", s.Namespace, s.Name, SeedKey, ErrBadKey)
	}
	kp, err := nkeys.FromCurveSeed(append([]byte(nil), seed...))
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s.Namespace, s.Name, ErrBadKey)
	}
	return kp, nil
}
