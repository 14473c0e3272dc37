package inspect

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
)

// CheckWorkload is the check of each workload the binding names.
const CheckWorkload = "Workload"

// checkWorkloads reports, per bound workload, whether its pod template
// consumes the connection: every key as an env var from the rendered
// Secret (or the binding volume mounted), the workload-identity
// ServiceAccount and label, in every container the binding names.
func checkWorkloads(ctx context.Context, r *report, client kubernetes.Interface, c connection.Connection) {
	s := c.Spec
	if s.Binding == nil {
		return
	}
	for _, w := range s.Binding.Workloads {
		what := fmt.Sprintf("%s %s/%s", w.Kind, s.Scope, w.Name)
		tpl, err := bind.PodTemplate(ctx, client, bind.Ref{Namespace: s.Scope, Kind: w.Kind, Name: w.Name})
		if err != nil {
			r.fail(CheckWorkload, "%s: %s", what, apiReason(err))
			continue
		}
		if problems := consumes(s, w, tpl); len(problems) > 0 {
			r.fail(CheckWorkload, "%s: %s", what, strings.Join(problems, "; "))
			continue
		}
		r.ok(CheckWorkload, "%s consumes Secret %s (%s mode)", what, connection.SecretName(s.ID()), s.Binding.ModeOrDefault())
	}
}

// consumes lists what tpl lacks of s's binding to w; none means it consumes it.
func consumes(s connection.Spec, w connection.Workload, tpl *corev1.PodTemplateSpec) []string {
	id, secret := s.ID(), connection.SecretName(s.ID())
	var problems []string
	if s.AuthInfo.AuthType == catalog.AuthWorkloadIdentity && s.AuthInfo.ClientID != "" {
		if sa := connection.ServiceAccountName(s.AuthInfo.ClientID); tpl.Spec.ServiceAccountName != sa {
			problems = append(problems, fmt.Sprintf("runs as ServiceAccount %q, not %s", tpl.Spec.ServiceAccountName, sa))
		}
		if tpl.Labels[bind.LabelWorkloadIdentityUse] != "true" {
			problems = append(problems, "pod label "+bind.LabelWorkloadIdentityUse+" is not \"true\"")
		}
	}
	volume := s.Binding.ModeOrDefault() == connection.BindingVolume
	if volume && !slices.ContainsFunc(tpl.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == bind.VolumeName(id) && v.Secret != nil && v.Secret.SecretName == secret
	}) {
		problems = append(problems, "no volume "+bind.VolumeName(id)+" of Secret "+secret)
	}
	for _, ctr := range tpl.Spec.Containers {
		if len(w.Containers) > 0 && !slices.Contains(w.Containers, ctr.Name) {
			continue
		}
		if volume {
			if !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == bind.VolumeName(id) }) {
				problems = append(problems, fmt.Sprintf("container %s does not mount %s", ctr.Name, bind.VolumeName(id)))
			}
			continue
		}
		var missing []string
		for _, cfg := range s.Configurations {
			key := s.RenderedKey(cfg.Name)
			if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
				return e.Name == key && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
					e.ValueFrom.SecretKeyRef.Name == secret && e.ValueFrom.SecretKeyRef.Key == key
			}) {
				missing = append(missing, key)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("container %s lacks %s from Secret %s", ctr.Name, strings.Join(missing, ", "), secret))
		}
	}
	for _, name := range w.Containers {
		if !slices.ContainsFunc(tpl.Spec.Containers, func(c corev1.Container) bool { return c.Name == name }) {
			problems = append(problems, "no container "+name)
		}
	}
	return problems
}
