package drift

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// sync decides whether the object named by key drifted and, if so, marks
// every Succeeded connection that claims it, and for which it drifted,
// Pending. Only an object a record claims is ever read from the API server.
func (c *Controller) sync(ctx context.Context, key objectKey) error {
	owners, err := c.owners(key)
	if err != nil {
		return err
	}
	return c.check(ctx, key, owners)
}

// check inspects the object named by key for owners, the settled
// connections claiming it.
func (c *Controller) check(ctx context.Context, key objectKey, owners []storedConn) error {
	if len(owners) == 0 {
		c.forget(key)
		return nil // not rendered for a settled connection: sc-job's business
	}

	v, err := c.inspect(ctx, key)
	if err != nil {
		return err
	}
	counted := false
	for _, o := range owners {
		change, _ := c.judge(v, o.conn, key)
		if change == "" {
			continue
		}
		if !counted {
			c.metrics.DriftDetected(key.Kind, change)
			counted = true
		}
		if err := c.markPending(ctx, o, key, v); err != nil {
			return err
		}
	}
	return nil
}

// verdict is what one look at an object found, before any record is
// consulted.
type verdict struct {
	// change is health.ChangeDeleted or ChangeModified when the object
	// itself says it drifted, "" when it is as sc-job renders it.
	change, why string
	// uid is the object's when it exists.
	uid types.UID
}

// judge is v for one claiming connection: the object's own drift, or, for
// an object as rendered, a UID that is not the one conn's record holds (our
// object was deleted and a same-named copy, however exact, took its
// place). A record holding no UID for it (an older release's) keeps the
// content verdict alone. The message names no value.
func (c *Controller) judge(v verdict, conn connection.Connection, key objectKey) (change, msg string) {
	switch v.change {
	case health.ChangeDeleted:
		return v.change, fmt.Sprintf("%s was deleted; rendering it again", key)
	case health.ChangeModified:
		return v.change, fmt.Sprintf("%s was modified (%s); rendering it again", key, v.why)
	}
	if notOurs, why := c.notOurs(conn, key.ref(), &metav1.ObjectMeta{UID: v.uid}); notOurs {
		return health.ChangeReplaced, fmt.Sprintf("%s was replaced (%s); rendering it again", key, why)
	}
	return "", ""
}

// inspect looks at the object. The watch says which version of the object
// exists; its content is read only when that version was not verified
// before. A miss in the cache is read too: the record's watch may run
// ahead of the object's, and a verdict of "deleted" sends the connection
// back to sc-job.
func (c *Controller) inspect(ctx context.Context, key objectKey) (verdict, error) {
	if rv, ok := c.cachedVersion(key); ok && rv != "" {
		if seen, ok := c.verifiedIdentity(key); ok && seen.ResourceVersion == rv {
			return verdict{uid: seen.UID}, nil
		}
	}
	obj, data, err := c.get(ctx, key)
	switch {
	case apierrors.IsNotFound(err):
		// sc-job refuses to overwrite an object it does not own, and says so.
		c.forget(key)
		return verdict{change: health.ChangeDeleted}, nil
	case err != nil:
		return verdict{}, err
	}
	if drifted, reason := c.driftOf(obj, data); drifted {
		c.forget(key)
		return verdict{change: health.ChangeModified, why: reason, uid: obj.GetUID()}, nil
	}
	c.mu.Lock()
	c.verified[key] = identity{ResourceVersion: obj.GetResourceVersion(), UID: obj.GetUID()}
	c.mu.Unlock()
	return verdict{uid: obj.GetUID()}, nil
}

// cachedVersion is the object's resourceVersion in whichever watched
// namespace's informer holds it.
func (c *Controller) cachedVersion(key objectKey) (string, bool) {
	for _, inf := range c.informers.byKind(key.Kind) {
		o, exists, err := inf.Informer().GetIndexer().GetByKey(key.Namespace + "/" + key.Name)
		if m, ok := o.(metav1.Object); err == nil && exists && ok {
			return m.GetResourceVersion(), true
		}
	}
	return "", false
}

// get reads a claimed object in full: the informers hold metadata only.
func (c *Controller) get(ctx context.Context, key objectKey) (metav1.Object, map[string][]byte, error) {
	var obj metav1.Object
	var data map[string][]byte
	var err error
	switch key.Kind {
	case KindSecret:
		var s *corev1.Secret
		if s, err = c.client.CoreV1().Secrets(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{}); err == nil {
			obj, data = s, s.Data
		}
	case KindServiceAccount:
		var sa *corev1.ServiceAccount
		if sa, err = c.client.CoreV1().ServiceAccounts(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{}); err == nil {
			obj = sa
		}
	default:
		return nil, nil, apierrors.NewNotFound(resourceOf(key.Kind), key.Name)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("get %s: %w", key, err)
	}
	return obj, data, err
}

func (c *Controller) verifiedIdentity(key objectKey) (identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.verified[key]
	return id, ok
}

// forget drops key's verified version, so that verified holds only
// objects a settled connection claims as rendered.
func (c *Controller) forget(key objectKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.verified, key)
}

// markPending re-reads the connection from the API server and judges v
// again for it before marking: the cache may still show Succeeded after
// sc-job already took the connection over (and removed the object on
// purpose), or the UID it replaced a deleted object's with.
func (c *Controller) markPending(ctx context.Context, o storedConn, key objectKey, v verdict) error {
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
	change, msg := c.judge(v, fresh, key)
	if change == "" {
		log.Debug().Msg("the record now holds the object's UID; not drift")
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
