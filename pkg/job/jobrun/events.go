package jobrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// ReportingController is what `kubectl get events` shows as the source.
const ReportingController = "sc-job"

// maxNote is the API server's limit on an Event's note.
const maxNote = 1024

// events writes events.k8s.io/v1 Events synchronously. client-go's
// broadcaster is asynchronous and may drop what is queued when a short-lived
// Job exits; a run writes one Event, plus one per failed connection, so
// writing them in line is cheap.
type events struct {
	client    kubernetes.Interface
	namespace string
	instance  string
	now       func() time.Time
}

// record reports a connection's failure on its record ConfigMap (uid: the
// record's, so that kubectl describe finds it). action says what sc-job was
// doing (Render, Delete).
func (e *events) record(ctx context.Context, id, uid, eventType, reason, action, note string) error {
	cm := connection.ConfigMapName(id)
	ref := corev1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Namespace: e.namespace, Name: cm, UID: types.UID(uid)}
	if err := e.create(ctx, ref, eventType, reason, action, note); err != nil {
		return fmt.Errorf("record %s event on %s: %w", reason, cm, err)
	}
	return nil
}

// run reports the run's summary on its Job (job, when this run is one;
// else on the name alone, for kubectl get events).
func (e *events) run(ctx context.Context, name string, job *batchv1.Job, eventType, reason, note string) error {
	if name == "" {
		name = ReportingController
	}
	ref := corev1.ObjectReference{APIVersion: "batch/v1", Kind: "Job", Namespace: e.namespace, Name: name}
	if job != nil {
		ref.UID, ref.ResourceVersion = job.UID, job.ResourceVersion
	}
	if err := e.create(ctx, ref, eventType, reason, actionRun, note); err != nil {
		return fmt.Errorf("record %s event on Job %s: %w", reason, name, err)
	}
	return nil
}

func (e *events) create(ctx context.Context, regarding corev1.ObjectReference, eventType, reason, action, note string) error {
	if len(note) > maxNote {
		note = note[:maxNote-3] + "..."
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: e.namespace, Name: fmt.Sprintf("%s.%s", regarding.Name, hex.EncodeToString(suffix[:]))},
		EventTime:           metav1.NewMicroTime(e.now()),
		ReportingController: ReportingController,
		ReportingInstance:   e.instance,
		Action:              action,
		Reason:              reason,
		Type:                eventType,
		Note:                note,
		Regarding:           regarding,
	}
	_, err := e.client.EventsV1().Events(e.namespace).Create(ctx, ev, metav1.CreateOptions{FieldManager: ReportingController})
	return err
}
