package inspect

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// NotOurs reports whether obj, found where c's record says sc-job rendered
// ref, is some other object: its UID is not the one the record holds
// (Status.OwnedUID). Labels cannot say this, as any tenant can copy them
// onto a Secret of the same name after deleting ours; the UID the API
// server assigned cannot be copied. A record with no UID for ref (written
// by a release that recorded none) proves nothing either way, so the
// object is not reported: its labels are judged as before (DriftOf).
func NotOurs(c connection.Connection, ref connection.ResourceRef, obj metav1.Object) (notOurs bool, reason string) {
	want, ok := c.Status.OwnedUID(ref)
	if !ok || string(obj.GetUID()) == want {
		return false, ""
	}
	return true, fmt.Sprintf("not the object sc-job created: its UID is %s, the record holds %s", obj.GetUID(), want)
}
