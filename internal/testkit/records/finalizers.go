package records

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// HonourFinalizers makes client treat ConfigMap finalizers the way an API
// server does, which the fake's object tracker does not: deleting a
// ConfigMap that has finalizers only sets its deletionTimestamp (once) and
// leaves it terminating; an update that leaves a terminating ConfigMap
// without finalizers deletes it. Delete preconditions (UID,
// resourceVersion) are checked, and every write bumps resourceVersion so
// that informers see each change. The actions are recorded as usual.
func HonourFinalizers(client *fake.Clientset, now func() time.Time) {
	gvr := corev1.SchemeGroupVersion.WithResource("configmaps")
	tracker := client.Tracker()
	get := func(ns, name string) (*corev1.ConfigMap, error) {
		obj, err := tracker.Get(gvr, ns, name)
		if err != nil {
			return nil, err
		}
		return obj.(*corev1.ConfigMap).DeepCopy(), nil
	}
	client.PrependReactor("delete", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		da := a.(k8stesting.DeleteAction)
		cm, err := get(da.GetNamespace(), da.GetName())
		if err != nil {
			return true, nil, err
		}
		if pre := da.GetDeleteOptions().Preconditions; pre != nil {
			if (pre.UID != nil && *pre.UID != cm.UID) || (pre.ResourceVersion != nil && *pre.ResourceVersion != cm.ResourceVersion) {
				return true, nil, apierrors.NewConflict(gvr.GroupResource(), cm.Name, fmt.Errorf("precondition failed"))
			}
		}
		if len(cm.Finalizers) == 0 {
			return true, nil, tracker.Delete(gvr, cm.Namespace, cm.Name)
		}
		if cm.DeletionTimestamp != nil {
			return true, cm, nil
		}
		ts := metav1.NewTime(now())
		cm.DeletionTimestamp = &ts
		bump(cm)
		return true, cm, tracker.Update(gvr, cm, cm.Namespace)
	})
	client.PrependReactor("update", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		cm := a.(k8stesting.UpdateAction).GetObject().(*corev1.ConfigMap).DeepCopy()
		cur, err := get(cm.Namespace, cm.Name)
		if err != nil {
			return true, nil, err
		}
		if cm.ResourceVersion != "" && cm.ResourceVersion != cur.ResourceVersion {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), cm.Name, fmt.Errorf("object was modified"))
		}
		// an API server keeps the deletionTimestamp whatever the update says
		cm.DeletionTimestamp, cm.ResourceVersion = cur.DeletionTimestamp, cur.ResourceVersion
		if cm.DeletionTimestamp != nil && len(cm.Finalizers) == 0 {
			return true, cm, tracker.Delete(gvr, cm.Namespace, cm.Name)
		}
		bump(cm)
		return true, cm, tracker.Update(gvr, cm, cm.Namespace)
	})
}

// bump gives cm the next resourceVersion (decimal, as the fake's tracker
// leaves it to clients).
func bump(cm *corev1.ConfigMap) {
	var n int
	_, _ = fmt.Sscanf(cm.ResourceVersion, "%d", &n)
	cm.ResourceVersion = fmt.Sprint(n + 1)
}
