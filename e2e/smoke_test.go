//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/e2e/testbed"
)

// The smoke tests prove that the full test bed runs real workloads: a Job
// with a locally built image starts, reaches the API server from inside
// the pod through the in-cluster configuration, is judged by RBAC, has its
// logs served through the API, and is garbage-collected by its TTL.

const smokeProbeSA = "probe"

// TestSmokeProbeJobReachesAPI runs the probe with a Role that allows it to
// list pods and expects success.
func TestSmokeProbeJobReachesAPI(t *testing.T) {
	t.Parallel()
	r := runProbe(t, true, 5)
	if !smokeHasCondition(r.finished, batchv1.JobComplete) {
		t.Fatalf("job %s did not complete: %+v\nlogs: %s", r.finished.Name, r.finished.Status.Conditions, r.logs)
	}
	if !strings.Contains(r.logs, "in-cluster API call succeeded") {
		t.Fatalf("probe log does not report success: %q", r.logs)
	}
	if !strings.Contains(r.logs, "namespace "+r.ns) {
		t.Errorf("probe listed another namespace than %s: %q", r.ns, r.logs)
	}
	smokeWaitDeleted(r.ctx, t, r.cs, r.ns, r.finished.Name)
}

// TestSmokeProbeJobFailsWithoutRBAC runs the probe without any Role: the API
// server must deny it, the probe must exit non-zero and say why, and the Job
// must fail. This keeps the success test honest.
func TestSmokeProbeJobFailsWithoutRBAC(t *testing.T) {
	t.Parallel()
	r := runProbe(t, false, 600) // kept: the pod is inspected below
	if !smokeHasCondition(r.finished, batchv1.JobFailed) {
		t.Fatalf("job %s should have failed: %+v", r.finished.Name, r.finished.Status.Conditions)
	}
	if !strings.Contains(r.logs, "in-cluster API call FAILED") || !strings.Contains(r.logs, "forbidden") {
		t.Fatalf("probe log should report a forbidden API call: %q", r.logs)
	}
	pod := smokeJobPod(r.ctx, t, r.cs, r.ns, r.finished.Name)
	st := pod.Status.ContainerStatuses
	if len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode == 0 {
		t.Fatalf("probe container should have exited non-zero: %+v", st)
	}
}

// probeRun is a finished probe Job and what the smoke tests inspect.
type probeRun struct {
	ctx      context.Context
	cs       kubernetes.Interface
	ns       string
	finished *batchv1.Job
	logs     string
}

// runProbe is both smoke tests' setup: a test namespace, the probe's
// ServiceAccount (with a pod-reading Role when allow), the probe Job with
// ttlSecondsAfterFinished ttl, run until it finished, and its log.
func runProbe(t *testing.T, allow bool, ttl int32) probeRun {
	t.Helper()
	c := testbed.Full(t)
	c.OnFailure(t)
	ns := c.TestNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cs := c.Clientset
	smokeCreateProbeSA(ctx, t, cs, ns, allow)
	job := smokeCreateProbeJob(ctx, t, cs, ns, ttl)
	finished := smokeWaitJobFinished(ctx, t, cs, ns, job.Name)
	logs := smokeJobLogs(ctx, t, cs, ns, job.Name)
	t.Logf("probe log: %s", logs)
	return probeRun{ctx: ctx, cs: cs, ns: ns, finished: finished, logs: logs}
}

// smokeCreateProbeSA creates the probe's ServiceAccount, and with allow a Role
// and RoleBinding that let it list pods in ns.
func smokeCreateProbeSA(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, allow bool) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: smokeProbeSA}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ServiceAccount: %v", err)
	}
	if !allow {
		return
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Role: %v", err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "probe-pod-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: smokeProbeSA, Namespace: ns}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create RoleBinding: %v", err)
	}
}

// smokeCreateProbeJob creates a one-shot Job running the probe image as the
// product's pods will run: non-root, no privilege escalation, read-only
// root filesystem, never pulling (the image was imported, not pushed).
func smokeCreateProbeJob(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, ttl int32) *batchv1.Job {
	t.Helper()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			TTLSecondsAfterFinished: ptr.To(ttl),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:      corev1.RestartPolicyNever,
				ServiceAccountName: smokeProbeSA,
				Containers: []corev1.Container{{
					Name:            "probe",
					Image:           testbed.ProbeImage,
					ImagePullPolicy: corev1.PullNever,
					SecurityContext: &corev1.SecurityContext{
						RunAsNonRoot:             ptr.To(true),
						AllowPrivilegeEscalation: ptr.To(false),
						ReadOnlyRootFilesystem:   ptr.To(true),
						Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					},
				}},
			}},
		},
	}
	created, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Job: %v", err)
	}
	return created
}

// smokeWaitJobFinished watches the Job until it is Complete or Failed.
func smokeWaitJobFinished(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) *batchv1.Job {
	t.Helper()
	ev, err := watchtools.UntilWithSync(ctx, smokeJobListWatch(cs, ns, name), &batchv1.Job{}, nil,
		func(e watch.Event) (bool, error) {
			if e.Type == watch.Deleted {
				return false, fmt.Errorf("job %s deleted before it finished", name)
			}
			j, ok := e.Object.(*batchv1.Job)
			return ok && (smokeHasCondition(j, batchv1.JobComplete) || smokeHasCondition(j, batchv1.JobFailed)), nil
		})
	if err != nil {
		t.Fatalf("waiting for job %s to finish: %v", name, err)
	}
	return ev.Object.(*batchv1.Job)
}

// smokeWaitDeleted watches until the TTL-after-finished controller deleted the Job.
func smokeWaitDeleted(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	_, err := watchtools.UntilWithSync(ctx, smokeJobListWatch(cs, ns, name), &batchv1.Job{},
		func(store cache.Store) (bool, error) { return len(store.List()) == 0, nil }, // gone already
		func(e watch.Event) (bool, error) { return e.Type == watch.Deleted, nil })
	if err != nil {
		t.Fatalf("job %s was not removed by ttlSecondsAfterFinished: %v", name, err)
	}
}

func smokeJobListWatch(cs kubernetes.Interface, ns, name string) cache.ListerWatcher {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return cs.BatchV1().Jobs(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return cs.BatchV1().Jobs(ns).Watch(ctx, o)
		},
	}
}

func smokeHasCondition(j *batchv1.Job, ct batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == ct && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// smokeJobPod returns the Job's pod, as `kubectl logs job/NAME` picks it.
func smokeJobPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, job string) *corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
	if err != nil {
		t.Fatalf("list pods of job %s: %v", job, err)
	}
	if len(pods.Items) == 0 {
		t.Fatalf("job %s has no pods", job)
	}
	return &pods.Items[0]
}

// smokeJobLogs reads the Job pod's log through the API server (and so through
// the kubelet), i.e. what `kubectl logs job/NAME` shows.
func smokeJobLogs(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, job string) string {
	t.Helper()
	pod := smokeJobPod(ctx, t, cs, ns, job)
	b, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("logs of pod %s: %v", pod.Name, err)
	}
	return strings.TrimSpace(string(b))
}
