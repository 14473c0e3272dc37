package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Labels and annotations on the Job.
const (
	LabelName         = "app.kubernetes.io/name"
	LabelComponent    = "app.kubernetes.io/component"
	AnnotationDigest  = "servicelinker.sc-extension.io/pending-digest"
	AnnotationPending = "servicelinker.sc-extension.io/pending-count"
	// AnnotationTemplate is a hash of the Job spec the launcher built from
	// its configuration (image, arguments, env, security context, limits),
	// never of the work: a running Job whose hash is not the one this agent
	// builds was launched by another release or configuration.
	AnnotationTemplate = "servicelinker.sc-extension.io/template-hash"
)

// EnvLogFormat is the variable sc-job reads its log format from.
const EnvLogFormat = "SC_LOG_FORMAT"

// jobFor builds the Job for a batch of pending work. Its digest annotation
// lets a later reconcile tell "the same work failed again" from "new work
// arrived since this run started"; its template annotation tells a Job this
// agent would build from one an earlier release or configuration built.
func jobFor(c Config, w work) *batchv1.Job {
	labels := map[string]string{
		connection.LabelManagedBy: connection.ManagedByValue,
		LabelName:                 c.JobName,
		LabelComponent:            "job",
	}
	args := append([]string{"--namespace=" + c.Namespace, "--job-name=" + c.JobName}, policyArgs(c)...)
	args = append(args, sizeArgs(c)...)
	args = append(args, c.ExtraArgs...)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: c.Namespace,
			Name:      c.JobName,
			Labels:    labels,
			Annotations: map[string]string{
				AnnotationDigest:  w.digest,
				AnnotationPending: strconv.Itoa(len(w.items)),
			},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(c.BackoffLimit),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:      corev1.RestartPolicyNever,
					ServiceAccountName: c.ServiceAccount,
					// sc-job talks to the API server with this token.
					AutomountServiceAccountToken: ptr.To(true),
					EnableServiceLinks:           ptr.To(false),
					ImagePullSecrets:             c.ImagePullSecrets,
					NodeSelector:                 c.NodeSelector,
					Tolerations:                  c.Tolerations,
					PriorityClassName:            c.PriorityClassName,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(nonRootUID),
						RunAsGroup:     ptr.To(nonRootUID),
						FSGroup:        ptr.To(nonRootUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "sc-job",
						Image:           c.Image,
						ImagePullPolicy: c.ImagePullPolicy,
						Args:            args,
						Resources:       c.Resources,
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr.To(true),
							RunAsUser:                ptr.To(nonRootUID),
							RunAsGroup:               ptr.To(nonRootUID),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					// readOnlyRootFilesystem: the Go runtime and client-go's
					// cache still want a writable /tmp.
					Volumes: []corev1.Volume{{
						Name: "tmp",
						VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
							SizeLimit: ptr.To(resource.MustParse("16Mi")),
						}},
					}},
				},
			},
		},
	}
	if c.LogFormat != "" {
		ctr := &job.Spec.Template.Spec.Containers[0]
		ctr.Env = append(ctr.Env, corev1.EnvVar{Name: EnvLogFormat, Value: c.LogFormat})
	}
	if c.ActiveDeadlineSeconds > 0 {
		job.Spec.ActiveDeadlineSeconds = ptr.To(c.ActiveDeadlineSeconds)
	}
	job.Annotations[AnnotationTemplate] = templateHash(&job.Spec)
	return job
}

// templateHash hashes the spec as built, before the API server defaults it,
// so the Job read back is compared through its annotation, never its spec.
// JSON of the typed struct sorts map keys and leaves out empty fields: the
// hash moves when what the launcher sets moves, not when the Kubernetes
// types gain a field.
func templateHash(spec *batchv1.JobSpec) string {
	b, err := json.Marshal(spec)
	if err != nil {
		panic(fmt.Sprintf("launcher: marshal job spec: %v", err)) // plain structs, strings and quantities: cannot happen
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:32]
}

// finished reports whether the Job reached a terminal condition, which one,
// and when.
func finished(job *batchv1.Job) (done bool, cond batchv1.JobCondition) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		if c.Type == batchv1.JobFailed || c.Type == batchv1.JobComplete {
			return true, c
		}
	}
	return false, batchv1.JobCondition{}
}

func ownedByUs(job *batchv1.Job) bool {
	return job.Labels[connection.LabelManagedBy] == connection.ManagedByValue
}

// sizeArgs passes sc-job's client rate, worker count, linger and restart
// window on, when set.
func sizeArgs(c Config) []string {
	var args []string
	if c.QPS > 0 {
		args = append(args, "--qps="+strconv.FormatFloat(c.QPS, 'f', -1, 64))
	}
	if c.Burst > 0 {
		args = append(args, "--burst="+strconv.Itoa(c.Burst))
	}
	if c.Workers > 0 {
		args = append(args, "--workers="+strconv.Itoa(c.Workers))
	}
	if c.Linger > 0 {
		args = append(args, "--linger="+c.Linger.String())
	}
	if c.RestartWindow > 0 {
		args = append(args, "--restart-window="+c.RestartWindow.String())
	}
	return args
}

// policyArgs passes the namespace policy on; namespace names never hold a
// comma, so a list is one argument.
func policyArgs(c Config) []string {
	var args []string
	if len(c.WatchNamespaces) > 0 {
		args = append(args, "--watch-namespaces="+strings.Join(c.WatchNamespaces, ","))
	}
	if len(c.DeniedNamespaces) > 0 {
		args = append(args, "--denied-namespaces="+strings.Join(c.DeniedNamespaces, ","))
	}
	return args
}
