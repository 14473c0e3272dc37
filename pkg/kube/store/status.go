package store

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/conflict"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// ErrUnchanged may be returned by a mutate func to say "nothing to write";
// UpdateStatus then returns the current record without writing.
var ErrUnchanged = errors.New("unchanged")

// UpdateStatus re-reads the record, applies mutate to it and writes it back;
// a conflict re-reads and re-applies mutate to the fresh copy, so a writer
// never overwrites a change it did not see. A mutate error aborts. A
// terminating record is removed: ErrNotFound, and nothing is written.
func (s *Store) UpdateStatus(ctx context.Context, id string, mutate func(*connection.Connection) error) (connection.Connection, error) {
	return s.updateStatus(ctx, id, nil, mutate)
}

// UpdateStatusFrom is UpdateStatus starting from the record as snap read
// it instead of reading it again: the write carries snap's
// resourceVersion, so it lands only if the record is still as read, and
// a conflict re-reads and re-applies mutate like UpdateStatus. A caller
// that reads a record, works, and writes its outcome makes one read.
func (s *Store) UpdateStatusFrom(ctx context.Context, snap Snapshot, mutate func(*connection.Connection) error) (connection.Connection, error) {
	return s.updateStatus(ctx, snap.Spec.ID(), snap.cm, mutate)
}

// updateStatus: from, when not nil, stands in for the first read.
func (s *Store) updateStatus(ctx context.Context, id string, from *corev1.ConfigMap, mutate func(*connection.Connection) error) (connection.Connection, error) {
	var out connection.Connection
	err := conflict.Retry(conflictBackoff, apierrors.IsConflict, func() error {
		cm := from
		from = nil // a conflict re-reads
		if cm == nil {
			var err error
			cm, err = s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
		}
		if record.Terminating(cm) {
			return ErrNotFound
		}
		c, err := record.Decode(cm)
		if err != nil {
			return err
		}
		if err := mutate(&c); err != nil {
			out = c
			return err
		}
		s.stamp(&c)
		next := cm.DeepCopy()
		if err := record.Encode(next, c); err != nil {
			return err
		}
		_, err = s.client.CoreV1().ConfigMaps(s.namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: connection.FieldManager})
		if apierrors.IsNotFound(err) {
			return ErrNotFound // removed since it was read
		}
		if err != nil {
			return err
		}
		out = c
		return nil
	})
	if errors.Is(err, ErrUnchanged) {
		return out, nil
	}
	if err != nil {
		return connection.Connection{}, fmt.Errorf("update status of %s: %w", id, err)
	}
	return out, nil
}

// MarkPending asks for the connection to be rendered again (drift); a
// pending deletion or work already pending is left as it is. A Failed
// connection is due at once: what it failed on may be what changed.
func (s *Store) MarkPending(ctx context.Context, id, reason, message string) error {
	_, err := s.UpdateStatus(ctx, id, func(c *connection.Connection) error {
		if c.Deletion != nil || c.Status.Phase.NeedsWork() {
			return ErrUnchanged
		}
		setPending(c, reason, message)
		c.Status.RetryAfter = nil
		return nil
	})
	return err
}

// Wake makes a connection that waits out a backoff (Retrying, Failed, or
// parked on its namespace) due now, because something it waits for
// changed; a Failed one goes back to Pending. Attempts and LastFailure stay,
// so a wake that does not help backs off further. A connection that is not
// waiting is left as it is.
func (s *Store) Wake(ctx context.Context, id, reason, message string) error {
	_, err := s.UpdateStatus(ctx, id, func(c *connection.Connection) error {
		if c.Status.RetryAfter == nil {
			return ErrUnchanged
		}
		c.Status.RetryAfter = nil
		if c.Status.Phase != connection.PhaseRunning {
			setPending(c, reason, message)
		}
		return nil
	})
	return err
}

// ErrNotDeleting: Remove was asked for a record whose deletion is no longer
// pending (a newer request re-created it); the record stays.
var ErrNotDeleting = errors.New("connection is not being deleted")

// Remove deletes a connection's records once its deletion was applied. Both
// deletes carry UID and resourceVersion preconditions taken while the record
// still said "deleting", so a request that re-created the connection
// meanwhile is never lost: the credential Secret goes first (only if it still
// holds the removed record's values), so that once the record is removed,
// and with it the Deleted status event owed, no credential of it is left.
//
// The record's deletion leaves it terminating: record.Finalizer holds it
// until the leading agent (statuswatch) has published Deleted, so that
// event survives agent restarts and leader changes. A record of an older
// release without the finalizer gains it first. Removing a terminating
// record again is a no-op.
func (s *Store) Remove(ctx context.Context, id string) error {
	cms := s.client.CoreV1().ConfigMaps(s.namespace)
	cm, err := cms.Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return s.removeCredentials(ctx, id, "")
	}
	if err != nil {
		return fmt.Errorf("remove record of %s: %w", id, err)
	}
	c, err := record.Decode(cm)
	if err != nil {
		return fmt.Errorf("remove record of %s: %w", id, err)
	}
	if c.Deletion == nil {
		return fmt.Errorf("remove record of %s: %w", id, ErrNotDeleting)
	}
	if record.Terminating(cm) {
		return s.removeCredentials(ctx, id, c.CredentialsVersion)
	}
	if err := s.removeCredentials(ctx, id, c.CredentialsVersion); err != nil {
		return err
	}
	if !record.HasFinalizer(cm) {
		held := cm.DeepCopy()
		held.Finalizers = append(held.Finalizers, record.Finalizer)
		// a conflict: the record changed since it said "deleting"; the
		// caller retries and re-reads
		if cm, err = cms.Update(ctx, held, metav1.UpdateOptions{FieldManager: connection.FieldManager}); err != nil {
			return fmt.Errorf("remove record of %s: hold for its Deleted status: %w", id, err)
		}
	}
	pre := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cm.UID, ResourceVersion: &cm.ResourceVersion}}
	if err := cms.Delete(ctx, cm.Name, pre); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove record of %s: %w", id, err)
	}
	return nil
}

// removeCredentials deletes the credential Secret if it holds version (any
// version when version is "", i.e. the record is already gone).
func (s *Store) removeCredentials(ctx context.Context, id, version string) error {
	secrets := s.client.CoreV1().Secrets(s.namespace)
	sec, err := secrets.Get(ctx, connection.CredentialSecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove credentials of %s: %w", id, err)
	}
	if err := record.CheckCredentials(sec); err != nil {
		return fmt.Errorf("remove credentials of %s: %w", id, err) // a newer release's: kept
	}
	if version != "" && sec.Annotations[record.VersionAnnotation] != version {
		return nil // written by a newer request
	}
	// a conflict means a newer request rewrote it after our read: keep it
	pre := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion}}
	if err := secrets.Delete(ctx, sec.Name, pre); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("remove credentials of %s: %w", id, err)
	}
	return nil
}

// IsNotFound reports whether err means the connection does not exist.
func IsNotFound(err error) bool { return record.IsNotFound(err) }
