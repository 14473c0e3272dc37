package bind

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// live is what Reconcile reads of a workload.
type live struct {
	meta     metav1.ObjectMeta
	template corev1.PodTemplateSpec
}

// config is the apply configuration's part that differs between kinds'
// layouts; nil applies the empty configuration.
type config struct {
	annotations map[string]string
	template    *corev1ac.PodTemplateSpecApplyConfiguration
}

// kindOps reads and applies one kind through its typed client.
type kindOps struct {
	// templatePath is where the pod template sits, as managedFields
	// spell it.
	templatePath []string
	get          func(ctx context.Context, c kubernetes.Interface, ns, name string) (*live, error)
	apply        func(ctx context.Context, c kubernetes.Interface, ns, name string, cfg *config, opts metav1.ApplyOptions) error
}

var kinds = map[connection.WorkloadKind]kindOps{
	connection.WorkloadDeployment: {
		templatePath: []string{"spec", "template"},
		get: func(ctx context.Context, c kubernetes.Interface, ns, name string) (*live, error) {
			o, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return &live{meta: o.ObjectMeta, template: o.Spec.Template}, nil
		},
		apply: func(ctx context.Context, c kubernetes.Interface, ns, name string, cfg *config, opts metav1.ApplyOptions) error {
			ac := appsv1ac.Deployment(name, ns)
			if cfg != nil {
				ac.WithAnnotations(cfg.annotations).WithSpec(appsv1ac.DeploymentSpec().WithTemplate(cfg.template))
			}
			_, err := c.AppsV1().Deployments(ns).Apply(ctx, ac, opts)
			return err
		},
	},
	connection.WorkloadStatefulSet: {
		templatePath: []string{"spec", "template"},
		get: func(ctx context.Context, c kubernetes.Interface, ns, name string) (*live, error) {
			o, err := c.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return &live{meta: o.ObjectMeta, template: o.Spec.Template}, nil
		},
		apply: func(ctx context.Context, c kubernetes.Interface, ns, name string, cfg *config, opts metav1.ApplyOptions) error {
			ac := appsv1ac.StatefulSet(name, ns)
			if cfg != nil {
				ac.WithAnnotations(cfg.annotations).WithSpec(appsv1ac.StatefulSetSpec().WithTemplate(cfg.template))
			}
			_, err := c.AppsV1().StatefulSets(ns).Apply(ctx, ac, opts)
			return err
		},
	},
	connection.WorkloadDaemonSet: {
		templatePath: []string{"spec", "template"},
		get: func(ctx context.Context, c kubernetes.Interface, ns, name string) (*live, error) {
			o, err := c.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return &live{meta: o.ObjectMeta, template: o.Spec.Template}, nil
		},
		apply: func(ctx context.Context, c kubernetes.Interface, ns, name string, cfg *config, opts metav1.ApplyOptions) error {
			ac := appsv1ac.DaemonSet(name, ns)
			if cfg != nil {
				ac.WithAnnotations(cfg.annotations).WithSpec(appsv1ac.DaemonSetSpec().WithTemplate(cfg.template))
			}
			_, err := c.AppsV1().DaemonSets(ns).Apply(ctx, ac, opts)
			return err
		},
	},
	connection.WorkloadCronJob: {
		templatePath: []string{"spec", "jobTemplate", "spec", "template"},
		get: func(ctx context.Context, c kubernetes.Interface, ns, name string) (*live, error) {
			o, err := c.BatchV1().CronJobs(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return &live{meta: o.ObjectMeta, template: o.Spec.JobTemplate.Spec.Template}, nil
		},
		apply: func(ctx context.Context, c kubernetes.Interface, ns, name string, cfg *config, opts metav1.ApplyOptions) error {
			ac := batchv1ac.CronJob(name, ns)
			if cfg != nil {
				ac.WithAnnotations(cfg.annotations).WithSpec(batchv1ac.CronJobSpec().WithJobTemplate(
					batchv1ac.JobTemplateSpec().WithSpec(batchv1ac.JobSpec().WithTemplate(cfg.template))))
			}
			_, err := c.BatchV1().CronJobs(ns).Apply(ctx, ac, opts)
			return err
		},
	},
}

func opsFor(k connection.WorkloadKind) (kindOps, error) {
	ops, ok := kinds[k]
	if !ok {
		return kindOps{}, fmt.Errorf("%w: kind %q (bindable: Deployment, StatefulSet, DaemonSet, CronJob)", errUnknownKind, k)
	}
	return ops, nil
}

// PodTemplate reads the pod template of the workload ref (a CronJob's
// Jobs' template for a CronJob): what validate compares a binding with.
func PodTemplate(ctx context.Context, c kubernetes.Interface, ref Ref) (*corev1.PodTemplateSpec, error) {
	ops, err := opsFor(ref.Kind)
	if err != nil {
		return nil, err
	}
	lv, err := ops.get(ctx, c, ref.Namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	return &lv.template, nil
}
