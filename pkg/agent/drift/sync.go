package drift

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// sync decides whether the object named by key drifted and, if so, marks
// every Succeeded connection that claims it Pending.
func (c *Controller) sync(ctx context.Context, key objectKey) error {
	conns, err := c.succeeded()
	if err != nil {
		return err
	}
	var owners []storedConn
	for _, sc := range conns {
		if claims(sc.conn, key) {
			owners = append(owners, sc)
		}
	}
	if len(owners) == 0 {
		return nil // not rendered for a settled connection: sc-job's business
	}

	change, why, err := c.inspect(key)
	if err != nil || change == "" {
		return err
	}
	msg := fmt.Sprintf("%s was deleted; rendering it again", key)
	if change == health.ChangeModified {
		msg = fmt.Sprintf("%s was modified (%s); rendering it again", key, why)
	}
	c.metrics.DriftDetected(key.Kind, change)
	for _, o := range owners {
		if err := c.markPending(ctx, o, key, msg); err != nil {
			return err
		}
	}
	return nil
}

// inspect returns "" when the object matches what sc-job rendered.
func (c *Controller) inspect(key objectKey) (change, why string, err error) {
	obj, data, err := c.lookup(key)
	switch {
	case apierrors.IsNotFound(err):
		// Gone, or no longer labelled managed-by sc-extension: either way
		// the connection's object is not what sc-job rendered. sc-job
		// refuses to overwrite an object it does not own, and says so.
		return health.ChangeDeleted, "", nil
	case err != nil:
		return "", "", err
	}
	if drifted, reason := c.driftOf(obj, data); drifted {
		return health.ChangeModified, reason, nil
	}
	return "", "", nil
}

// lookup finds the object in whichever watched namespace holds it.
func (c *Controller) lookup(key objectKey) (metav1.Object, map[string][]byte, error) {
	var lastErr error
	switch key.Kind {
	case KindSecret:
		for _, l := range c.secrets {
			s, err := l.Secrets(key.Namespace).Get(key.Name)
			if err == nil {
				return s, s.Data, nil
			}
			lastErr = err
		}
	case KindServiceAccount:
		for _, l := range c.accounts {
			sa, err := l.ServiceAccounts(key.Namespace).Get(key.Name)
			if err == nil {
				return sa, nil, nil
			}
			lastErr = err
		}
	}
	if lastErr == nil || apierrors.IsNotFound(lastErr) {
		return nil, nil, apierrors.NewNotFound(corev1.Resource(key.Kind), key.Name)
	}
	return nil, nil, fmt.Errorf("get %s from cache: %w", key, lastErr)
}

// markPending re-reads the connection from the API server before marking:
// the cache may still show Succeeded after sc-job already took the
// connection over (and removed the object on purpose).
func (c *Controller) markPending(ctx context.Context, o storedConn, key objectKey, msg string) error {
	log := c.log.With().Str("objectId", o.id).Str("connection", o.conn.Spec.Name).
		Str("kind", key.Kind).Str("namespace", key.Namespace).Str("name", key.Name).Logger()
	fresh, err := c.store.Get(ctx, o.id)
	switch {
	case record.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get connection %s: %w", o.id, err)
	}
	if fresh.Status.Phase != connection.PhaseSucceeded || fresh.Deletion != nil || !claims(fresh, key) {
		log.Debug().Str("phase", string(fresh.Status.Phase)).Msg("connection moved on; not drift")
		return nil
	}
	if err := c.store.MarkPending(ctx, o.id, ReasonDrift, msg); err != nil {
		if record.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("mark connection %s pending: %w", o.id, err)
	}
	c.recorder.Event(o.record, corev1.EventTypeWarning, ReasonDrift, msg)
	log.Info().Str("phase", string(connection.PhasePending)).Msg(msg)
	return nil
}
