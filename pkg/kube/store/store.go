package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/conflict"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

var (
	// ErrNotFound: no record for that connection (record.ErrNotFound).
	ErrNotFound = record.ErrNotFound
	// ErrCorrupt: a record cannot be decoded (record.ErrCorrupt).
	ErrCorrupt = record.ErrCorrupt
	// ErrUnsupportedVersion: the record was written by a newer release
	// (record.ErrUnsupportedVersion); it is neither decoded nor written.
	ErrUnsupportedVersion = record.ErrUnsupportedVersion
	// ErrCredentialsStale: the credential Secret does not belong to the
	// record's generation (a write in progress or interrupted); retry later.
	ErrCredentialsStale = errors.New("credential values do not match the connection's generation")
	// ErrTerminating: the connection's record was removed and waits for
	// its Deleted status event (record.Finalizer). A change to it must
	// wait until the record is gone, so it is transient: retry later.
	ErrTerminating = errors.New("connection record is being removed; retry once its Deleted status is published")
)

// conflictBackoff is generous on purpose: every retry re-reads, so a retry
// is always safe, and giving up only moves the work to the caller's slower
// redelivery. Jitter keeps racing writers from colliding in lockstep. No Cap:
// wait.Backoff ends the retries as soon as the cap is reached (Steps drops
// to zero), which silently cut a "30-step" backoff to about 10.
var conflictBackoff = wait.Backoff{Steps: 30, Duration: 10 * time.Millisecond, Factor: 1.2, Jitter: 1}

// Store reads and writes connection records in one namespace.
type Store struct {
	client    kubernetes.Interface
	namespace string
	now       func() time.Time
	// token draws a new record's Status.Incarnation.
	token func() string
	// absent, when set, says a connection has no record (WithAbsence).
	absent func(id string) bool
}

// New returns a Store for records in namespace.
func New(client kubernetes.Interface, namespace string) *Store {
	return &Store{client: client, namespace: namespace, now: func() time.Time { return time.Now().UTC() }, token: randomToken}
}

// Namespace is where the records live.
func (s *Store) Namespace() string { return s.namespace }

// Get returns the connection with object id id.
func (s *Store) Get(ctx context.Context, id string) (connection.Connection, error) {
	snap, err := s.Snapshot(ctx, id)
	return snap.Connection, err
}

// Snapshot is a connection as read, with the record it was decoded from,
// so that one status write after it (UpdateStatusFrom) need not read the
// record again.
type Snapshot struct {
	connection.Connection
	cm *corev1.ConfigMap
}

// Snapshot reads the connection with object id id, like Get.
func (s *Store) Snapshot(ctx context.Context, id string) (Snapshot, error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Snapshot{}, fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("get connection %s: %w", id, err)
	}
	if record.Terminating(cm) {
		return Snapshot{}, fmt.Errorf("connection %s is being removed: %w", id, ErrNotFound)
	}
	c, err := record.Decode(cm)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Connection: c, cm: cm}, nil
}

// List returns every connection, ordered by object id. A corrupt record is
// reported, not skipped: silently ignoring it would hide a connection. A
// terminating record is left out: its connection is removed.
func (s *Store) List(ctx context.Context) ([]connection.Connection, error) {
	cms, err := s.client.CoreV1().ConfigMaps(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: record.Selector})
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	var out []connection.Connection
	var errs []error
	for i := range cms.Items {
		if !record.IsRecord(&cms.Items[i]) || record.Terminating(&cms.Items[i]) {
			continue
		}
		c, err := record.Decode(&cms.Items[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.ID() < out[j].Spec.ID() })
	return out, errors.Join(errs...)
}

// Credentials returns the credential values of c's current generation.
func (s *Store) Credentials(ctx context.Context, c connection.Connection) (connection.Credentials, error) {
	if !hasCredentials(c.Spec) {
		return connection.Credentials{}, nil
	}
	id := c.Spec.ID()
	sec, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, connection.CredentialSecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("credential Secret of %s missing: %w", id, ErrCredentialsStale)
	}
	if err != nil {
		return nil, fmt.Errorf("get credentials of %s: %w", id, err)
	}
	if err := record.CheckCredentials(sec); err != nil {
		return nil, fmt.Errorf("get credentials of %s: %w", id, err)
	}
	if got := sec.Annotations[record.VersionAnnotation]; got != c.CredentialsVersion {
		return nil, fmt.Errorf("credential Secret of %s holds version %q, record expects %q: %w",
			id, got, c.CredentialsVersion, ErrCredentialsStale)
	}
	creds := connection.Credentials{}
	for k, v := range sec.Data {
		creds[k] = string(v)
	}
	return creds, nil
}

func hasCredentials(spec connection.Spec) bool {
	for _, c := range spec.Configurations {
		if c.Credential {
			return true
		}
	}
	return false
}

// Apply stores the desired state of an accepted change; see the package doc
// for the layout. It is idempotent by request id.
//
// A create the absence predicate (WithAbsence) vouches for skips the reads
// on its first attempt: the credential Secret, then the record, are
// created blind. Any AlreadyExists is a Conflict, so the retry reads
// everything like any other change; a delete always reads.
func (s *Store) Apply(ctx context.Context, ch connection.Change) (conn connection.Connection, applied bool, err error) {
	id := ch.Spec.ID()
	blind := !ch.Delete && s.absent != nil && s.absent(id)
	err = conflict.Retry(conflictBackoff, apierrors.IsConflict, func() error {
		if blind {
			blind = false // once: a retry is a read-modify-write
			conn, applied, err = s.createOnce(ctx, id, ch)
			return err
		}
		conn, applied, err = s.applyOnce(ctx, id, ch)
		return err
	})
	if err != nil {
		return connection.Connection{}, false, fmt.Errorf("store connection %s: %w", id, err)
	}
	return conn, applied, nil
}

func (s *Store) applyOnce(ctx context.Context, id string, ch connection.Change) (connection.Connection, bool, error) {
	cms := s.client.CoreV1().ConfigMaps(s.namespace)
	cm, err := cms.Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return connection.Connection{}, false, err
	}
	var cur connection.Connection
	if exists {
		if cur, err = record.Decode(cm); err != nil {
			return connection.Connection{}, false, err
		}
		if cur.Seen(ch.RequestID) {
			return cur, false, nil
		}
		if record.Terminating(cm) {
			// Never resurrect or overwrite a removed record: its Deleted
			// event is still owed. The change applies once it is gone.
			return connection.Connection{}, false, ErrTerminating
		}
	} else {
		if ch.Delete {
			return connection.Connection{}, false, ErrNotFound
		}
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: connection.ConfigMapName(id), Namespace: s.namespace}}
	}

	credsChanged := false
	if !ch.Delete {
		if credsChanged, err = s.credentialsDiffer(ctx, cur, exists, ch); err != nil {
			return connection.Connection{}, false, err
		}
	}
	next := accept(cur, exists, credsChanged, ch)
	if credsChanged {
		// the Secret first: the ConfigMap below is the commit point
		if err := s.writeCredentials(ctx, ch.Spec, ch.Credentials, ch.RequestID); err != nil {
			return connection.Connection{}, false, err
		}
	}
	s.stamp(&next)
	if err := record.Encode(cm, next); err != nil {
		return connection.Connection{}, false, err
	}
	if exists {
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: connection.FieldManager})
	} else {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: connection.FieldManager})
		if apierrors.IsAlreadyExists(err) {
			// a racing writer created it: re-read and apply again
			err = apierrors.NewConflict(corev1.Resource("configmaps"), cm.Name, err)
		}
	}
	if err != nil {
		return connection.Connection{}, false, err
	}
	return next, true, nil
}

// createOnce is a create without reads, for a connection the absence
// predicate says has no record: the credential Secret (if any), then the
// record, each created, never updated, so nothing that exists is
// overwritten. AlreadyExists on either (a stale cache, a Secret left by an
// interrupted write or by a newer release, a racing writer) is a Conflict:
// Apply's retry then reads and decides as for any other change.
func (s *Store) createOnce(ctx context.Context, id string, ch connection.Change) (connection.Connection, bool, error) {
	credsChanged := len(ch.Credentials) > 0
	next := accept(connection.Connection{}, false, credsChanged, ch)
	var sec *corev1.Secret
	if credsChanged {
		var err error
		if sec, err = s.createCredentials(ctx, ch.Spec, ch.Credentials, ch.RequestID); err != nil {
			return connection.Connection{}, false, err
		}
	}
	s.stamp(&next)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: connection.ConfigMapName(id), Namespace: s.namespace}}
	if err := record.Encode(cm, next); err != nil {
		return connection.Connection{}, false, err
	}
	_, err := s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: connection.FieldManager})
	if apierrors.IsAlreadyExists(err) {
		if sec != nil {
			s.retractCredentials(ctx, sec)
		}
		return connection.Connection{}, false, apierrors.NewConflict(corev1.Resource("configmaps"), cm.Name, err)
	}
	if err != nil {
		return connection.Connection{}, false, err
	}
	return next, true, nil
}

// retractCredentials deletes the credential Secret a blind create just
// made, when the record turned out to exist: the read-modify-write that
// follows writes it again if the record needs it, and a record this build
// must not touch (a newer release's, a terminating one) gets nothing
// beside it. The preconditions spare a Secret another writer has updated
// since; a failure leaves what an interrupted write leaves, which every
// reader already treats as stale.
func (s *Store) retractCredentials(ctx context.Context, sec *corev1.Secret) {
	pre := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion}}
	_ = s.client.CoreV1().Secrets(s.namespace).Delete(ctx, sec.Name, pre)
}

// accept is the record a change leaves behind, before its stamp: cur (zero
// when there is no record) with the request remembered and either the
// deletion pending or the spec taken, with a new generation when anything
// changed. credsChanged says the change's credentials will be written.
func accept(cur connection.Connection, exists, credsChanged bool, ch connection.Change) connection.Connection {
	next := cur
	if cur.Status.Reason == connection.ReasonRestartScheduled {
		// A scheduled restart's time is no backoff: the request is due
		// now, and rendering it decides the restart again.
		next.Status.RetryAfter = nil
	}
	next.Status.LastRequestID = ch.RequestID
	next.Remember(ch.RequestID)
	if ch.Delete {
		next.Deletion = &connection.Deletion{RequestID: ch.RequestID, DeleteResources: ch.DeleteResources}
		setPending(&next, "DeleteRequested", "delete accepted; waiting for sc-job")
		return next
	}
	changed := !exists || cur.Deletion != nil || credsChanged || !reflect.DeepEqual(cur.Spec, ch.Spec)
	next.Spec, next.Deletion = ch.Spec, nil
	switch {
	case changed:
		next.Generation = cur.Generation + 1
		setPending(&next, "Accepted", "accepted; waiting for sc-job")
	case cur.Status.Phase != connection.PhaseSucceeded:
		// nothing changed, but the last run did not succeed: retry it
		setPending(&next, "Accepted", "re-sent; waiting for sc-job")
	}
	if credsChanged {
		next.CredentialsVersion = ch.RequestID
	}
	return next
}

func setPending(c *connection.Connection, reason, message string) {
	c.Status.Phase = connection.PhasePending
	c.Status.Reason = reason
	c.Status.Message = message
}

// credentialsDiffer compares the change's credentials with the stored ones
// without ever returning or logging a value.
func (s *Store) credentialsDiffer(ctx context.Context, cur connection.Connection, exists bool, ch connection.Change) (bool, error) {
	if !exists || cur.CredentialsVersion == "" {
		return len(ch.Credentials) > 0, nil
	}
	stored, err := s.Credentials(ctx, cur)
	if errors.Is(err, ErrCredentialsStale) {
		return true, nil // rewrite a half-written pair
	}
	if err != nil {
		return false, err
	}
	if len(stored) != len(ch.Credentials) {
		return true, nil
	}
	for k, v := range ch.Credentials {
		if sv, ok := stored[k]; !ok || sv != v {
			return true, nil
		}
	}
	return false, nil
}

func (s *Store) writeCredentials(ctx context.Context, spec connection.Spec, creds connection.Credentials, version string) error {
	secrets := s.client.CoreV1().Secrets(s.namespace)
	name := connection.CredentialSecretName(spec.ID())
	data := credentialData(creds)
	// A conflict goes up to Apply's one retry loop, which re-reads the
	// record and the Secret: a retry here too would multiply the attempts.
	sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = s.createCredentials(ctx, spec, creds, version)
		return err
	}
	if err != nil {
		return wrapCredErr(name, err)
	}
	if err := record.CheckCredentials(sec); err != nil {
		return err // a newer release's: never overwritten
	}
	sec = sec.DeepCopy()
	stampCredentials(sec, spec, data, version)
	_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: connection.FieldManager})
	return wrapCredErr(name, err)
}

// createCredentials creates the credential Secret; one that exists is a
// Conflict, for Apply's retry to read.
func (s *Store) createCredentials(ctx context.Context, spec connection.Spec, creds connection.Credentials, version string) (*corev1.Secret, error) {
	name := connection.CredentialSecretName(spec.ID())
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.namespace}, Type: corev1.SecretTypeOpaque}
	stampCredentials(sec, spec, credentialData(creds), version)
	created, err := s.client.CoreV1().Secrets(s.namespace).Create(ctx, sec, metav1.CreateOptions{FieldManager: connection.FieldManager})
	if apierrors.IsAlreadyExists(err) {
		return nil, apierrors.NewConflict(corev1.Resource("secrets"), name, err)
	}
	if err != nil {
		return nil, wrapCredErr(name, err)
	}
	return created, nil
}

func credentialData(creds connection.Credentials) map[string][]byte {
	data := make(map[string][]byte, len(creds))
	for k, v := range creds {
		data[k] = []byte(v)
	}
	return data
}

// wrapCredErr names the Secret; API errors never carry its data.
func wrapCredErr(name string, err error) error {
	if err == nil || apierrors.IsConflict(err) {
		return err
	}
	return fmt.Errorf("write credential Secret %s: %w", name, err)
}

func stampCredentials(sec *corev1.Secret, spec connection.Spec, data map[string][]byte, version string) {
	record.SetOwnership(&sec.ObjectMeta, spec)
	record.StampCredentials(&sec.ObjectMeta)
	sec.Annotations[record.VersionAnnotation] = version
	sec.Data = data
	sec.StringData = nil
}

// stamp is the one place a record write marks its status: the time, the
// next Seq, and, on the record's first write (or the first by this release),
// its Incarnation. Status events are ordered and deduplicated by these.
func (s *Store) stamp(c *connection.Connection) {
	c.Status.UpdatedAt = s.now()
	c.Status.Seq++
	if c.Status.Incarnation == "" {
		c.Status.Incarnation = s.token()
	}
}

// randomToken is 128 random bits: unique per record without coordination,
// unlike anything derived from names, clocks or request ids.
func randomToken() string { return rand.Text() }
