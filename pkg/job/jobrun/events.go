package jobrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// ReportingController is what `kubectl get events` shows as the source.
const ReportingController = "sc-job"

// maxNote is the API server's limit on an Event's note.
const maxNote = 1024

// events writes events.k8s.io/v1 Events synchronously. client-go's
// broadcaster is asynchronous and may drop what is queued when a short-lived
// Job exits; a run's few Events per connection are cheap to write in line.
type events struct {
	client    kubernetes.Interface
	namespace string
	instance  string
	now       func() time.Time
}

// record reports a phase change on the connection's record ConfigMap.
// action says what sc-job was doing (Render, Delete).
func (e *events) record(ctx context.Context, id, eventType, reason, action, note string) error {
	if len(note) > maxNote {
		note = note[:maxNote-3] + "..."
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	cm := connection.ConfigMapName(id)
	now := e.now()
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: e.namespace, Name: fmt.Sprintf("%s.%s", cm, hex.EncodeToString(suffix[:]))},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: ReportingController,
		ReportingInstance:   e.instance,
		Action:              action,
		Reason:              reason,
		Type:                eventType,
		Note:                note,
		Regarding:           corev1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Namespace: e.namespace, Name: cm},
	}
	_, err := e.client.EventsV1().Events(e.namespace).Create(ctx, ev, metav1.CreateOptions{FieldManager: ReportingController})
	if err != nil {
		return fmt.Errorf("record %s event on %s: %w", reason, cm, err)
	}
	return nil
}
