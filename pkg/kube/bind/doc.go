// Package bind wires workloads (Deployments, StatefulSets, DaemonSets,
// CronJobs) to the Secrets sc-job renders, and rolls them when a Secret's
// data changes.
//
// A workload's binding is the union of its members, one per connection bound
// to it, written in ONE server-side apply under ONE field manager
// (FieldManager). Server-side apply then does the bookkeeping: fields only
// we own disappear when a member leaves, an empty configuration removes all
// we ever added, and a field another manager owns with another value is a
// conflict we refuse rather than force. One write per workload is also one
// rollout, however many members changed.
//
// What each member adds to the pod template (CronJob: its Jobs' template):
//   - env mode: one env entry per rendered key, a secretKeyRef into the
//     member's Secret. env, not envFrom: envFrom is an atomic list, so
//     applying it would take over the user's whole list.
//   - volume mode: volume sc-<id>-binding (the Secret) mounted read-only at
//     $SERVICE_BINDING_ROOT/<id> in the servicebinding.io layout; a
//     container that sets no SERVICE_BINDING_ROOT gets ours,
//     connection.DefaultBindingRoot.
//   - workload identity: serviceAccountName and the pod label
//     azure.workload.identity/use=true.
//   - the annotation AnnotationRestartToken, a hash over the members'
//     restart tokens: changing it is what rolls the pods. sc-job derives a
//     token from the Secret's UID and data hash, never from values alone,
//     because who reads a workload need not be allowed to read its Secrets.
//
// The workload's own annotations record the last restart we caused
// (AnnotationRestartedAt), so restarts for new data are at most one per
// window (a change of the binding itself rolls the pods anyway and takes
// the newest token with it), and a hash of the applied configuration
// (AnnotationBindingHash), so an unchanged binding costs one GET and no
// write.
package bind
