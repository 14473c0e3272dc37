package bind

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// VolumeName is the pod volume carrying connection id's Secret in volume
// mode: at most 61 characters for the longest id.
func VolumeName(id string) string { return "sc-" + id + "-binding" }

// volumeOwner marks SERVICE_BINDING_ROOT as the volume members' (all of
// them agree on its value) in the per-container table of env owners.
const volumeOwner = "(volume mode)"

// desired builds the configuration for members on the workload as it is
// live: which containers, which ServiceAccount, which restart token.
func (b *Binder) desired(ops kindOps, ref Ref, lv *live, members []Member, notBefore time.Time) (*config, Result, error) {
	var res Result
	for _, m := range members {
		if err := checkKeys(ref, m); err != nil {
			return nil, res, refuse(m, err)
		}
	}
	specPath := append(fieldPath(ops.templatePath...), "f:spec")
	specField := strings.Join(ops.templatePath, ".") + ".spec"
	mf := lv.meta.ManagedFields

	sa, err := serviceAccount(ref, lv, members, specPath, specField)
	if err != nil {
		return nil, res, err
	}

	byID := make(map[string]Member, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	liveNames := make([]string, 0, len(lv.template.Spec.Containers))
	for _, c := range lv.template.Spec.Containers {
		liveNames = append(liveNames, c.Name)
	}
	for _, m := range members {
		for _, c := range m.Containers {
			if !slices.Contains(liveNames, c) {
				return nil, res, refuse(m, fmt.Errorf("%w: %s: %s.containers has no container %q (connection %s names it; it has %s)",
					ErrContainerNotFound, ref, specField, c, m.Connection, strings.Join(liveNames, ", ")))
			}
		}
	}

	spec := corev1ac.PodSpec()
	volumes := map[string]bool{}
	for _, c := range lv.template.Spec.Containers {
		var env []*corev1ac.EnvVarApplyConfiguration
		var mounts []*corev1ac.VolumeMountApplyConfiguration
		// owner: env name -> the member id that sets it, or volumeOwner.
		owner := map[string]string{}
		containerPath := append(slices.Clone(specPath), "f:containers", keyed(c.Name))
		field := fmt.Sprintf("%s.containers[name=%s]", specField, c.Name)
		add := func(name string, m Member, e *corev1ac.EnvVarApplyConfiguration) error {
			if prev, dup := owner[name]; dup {
				if prev == volumeOwner {
					// A key named like the binding root loses to volume mode.
					return refuse(m, fmt.Errorf("%w: %s: %s.env[name=%s] is wanted by connection %s and by volume mode",
						ErrBindingConflict, ref, field, name, m.Connection))
				}
				// The member whose entry is live keeps it; else the first.
				loser, winner := m, byID[prev]
				if liveRef(c, name) == m.SecretName {
					loser, winner = byID[prev], m
				}
				return refuse(loser, fmt.Errorf("%w: %s: %s.env[name=%s] is wanted by connections %s and %s; %s keeps it",
					ErrBindingConflict, ref, field, name, byID[prev].Connection, m.Connection, winner.Connection))
			}
			if liveEnv(c, name) != nil && !owns(mf, FieldManager, append(slices.Clone(containerPath), "f:env", keyed(name))...) {
				return refuse(m, fmt.Errorf("%w: %s: %s.env[name=%s] is already set by another manager; connection %s would set it too",
					ErrBindingConflict, ref, field, name, m.Connection))
			}
			owner[name] = m.ID
			env = append(env, e)
			return nil
		}
		bound := false
		for _, m := range members {
			if m.RestartOnly || (len(m.Containers) > 0 && !slices.Contains(m.Containers, c.Name)) {
				continue
			}
			bound = true
			if m.Mode != connection.BindingVolume {
				for _, k := range m.Keys {
					e := corev1ac.EnvVar().WithName(k).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
						corev1ac.SecretKeySelector().WithName(m.SecretName).WithKey(k)))
					if err := add(k, m, e); err != nil {
						return nil, res, err
					}
				}
				continue
			}
			root, ours, err := bindingRoot(ref, c, field)
			if err != nil {
				return nil, res, refuse(m, err)
			}
			if ours {
				if prev, dup := owner[EnvServiceBindingRoot]; dup && prev != volumeOwner {
					return nil, res, refuse(byID[prev], fmt.Errorf("%w: %s: %s.env[name=%s] is wanted by connection %s and by volume mode (connection %s)",
						ErrBindingConflict, ref, field, EnvServiceBindingRoot, byID[prev].Connection, m.Connection))
				}
				if _, dup := owner[EnvServiceBindingRoot]; !dup {
					owner[EnvServiceBindingRoot] = volumeOwner
					env = append(env, corev1ac.EnvVar().WithName(EnvServiceBindingRoot).WithValue(root))
				}
			}
			mounts = append(mounts, corev1ac.VolumeMount().WithName(VolumeName(m.ID)).WithMountPath(path.Join(root, m.ID)).WithReadOnly(true))
			if !volumes[m.ID] {
				volumes[m.ID] = true
				spec.WithVolumes(corev1ac.Volume().WithName(VolumeName(m.ID)).WithSecret(corev1ac.SecretVolumeSource().WithSecretName(m.SecretName)))
			}
		}
		if !bound {
			continue
		}
		res.Containers = append(res.Containers, c.Name)
		if len(env) > 0 || len(mounts) > 0 {
			ac := corev1ac.Container().WithName(c.Name)
			if len(env) > 0 {
				ac.WithEnv(env...)
			}
			if len(mounts) > 0 {
				ac.WithVolumeMounts(mounts...)
			}
			spec.WithContainers(ac)
		}
	}
	sort.Strings(res.Containers)

	tmpl := corev1ac.PodTemplateSpec()
	if sa != "" {
		// serviceAccount is the deprecated alias the API server fills in
		// from serviceAccountName: owning both is what lets an empty
		// apply remove the name (left alone, the alias would restore it).
		spec.WithServiceAccountName(sa).WithDeprecatedServiceAccount(sa)
		tmpl.WithLabels(map[string]string{LabelWorkloadIdentityUse: "true"})
	}
	tmpl.WithSpec(spec)

	token, restartedAt := b.restart(lv, members, notBefore, &res)
	cfg, err := withRestart(ref.Kind, tmpl, token, restartedAt)
	// Restart-only members change nothing but the token: with none else,
	// a held-back restart leaves the template as it is.
	bindsFields := slices.ContainsFunc(members, func(m Member) bool { return !m.RestartOnly })
	if err != nil || res.DeferredUntil.IsZero() || !bindsFields || cfg.annotations[AnnotationBindingHash] == lv.meta.Annotations[AnnotationBindingHash] {
		return cfg, res, err
	}
	// The restart is held back, but the pod template changes anyway (a
	// connection joined or left, a key was added): the pods roll now, so
	// they may as well get the new token, and no second rollout follows.
	if tmpl.ObjectMetaApplyConfiguration != nil {
		delete(tmpl.Annotations, AnnotationRestartToken)
	}
	res.DeferredUntil, res.Restarted = time.Time{}, true
	cfg, err = withRestart(ref.Kind, tmpl, restartToken(members), b.now().UTC().Format(time.RFC3339))
	return cfg, res, err
}

// withRestart completes tmpl with the restart token and the workload's
// annotations (restarted-at, and the hash of it all).
func withRestart(kind connection.WorkloadKind, tmpl *corev1ac.PodTemplateSpecApplyConfiguration, token, restartedAt string) (*config, error) {
	annotations := map[string]string{}
	if token != "" {
		tmpl.WithAnnotations(map[string]string{AnnotationRestartToken: token})
	}
	if restartedAt != "" {
		annotations[AnnotationRestartedAt] = restartedAt
	}
	h, err := bindingHash(kind, annotations, tmpl)
	if err != nil {
		return nil, err
	}
	annotations[AnnotationBindingHash] = h
	return &config{annotations: annotations, template: tmpl}, nil
}

// serviceAccount is the one ServiceAccount the members need ("" for none).
// The one the live template runs as keeps it; a member needing another
// than the first, or than one another manager set, is refused.
func serviceAccount(ref Ref, lv *live, members []Member, specPath []string, specField string) (string, error) {
	cur := lv.template.Spec.ServiceAccountName
	ours := owns(lv.meta.ManagedFields, FieldManager, append(slices.Clone(specPath), "f:serviceAccountName")...)
	var sa, from string
	if cur != "" {
		if i := slices.IndexFunc(members, func(m Member) bool { return m.ServiceAccount == cur }); i >= 0 {
			sa, from = cur, members[i].Connection
		}
	}
	for _, m := range members {
		switch {
		case m.ServiceAccount == "" || m.ServiceAccount == sa:
		case sa != "":
			return "", refuse(m, fmt.Errorf("%w: %s: %s.serviceAccountName would have to be both %s (connection %s) and %s (connection %s)",
				ErrServiceAccountConflict, ref, specField, sa, from, m.ServiceAccount, m.Connection))
		case cur != "" && !ours:
			return "", refuse(m, fmt.Errorf("%w: %s: %s.serviceAccountName is %s, set by another manager; connection %s (workload identity) needs %s",
				ErrServiceAccountConflict, ref, specField, cur, m.Connection, m.ServiceAccount))
		default:
			sa, from = m.ServiceAccount, m.Connection
		}
	}
	return sa, nil
}

// bindingRoot is SERVICE_BINDING_ROOT for container c: its own value when
// it sets one, else DefaultBindingRoot, which we then set (ours).
func bindingRoot(ref Ref, c corev1.Container, field string) (root string, ours bool, err error) {
	e := liveEnv(c, EnvServiceBindingRoot)
	switch {
	case e == nil:
		return connection.DefaultBindingRoot, true, nil
	case e.ValueFrom != nil:
		return "", false, fmt.Errorf("%w: %s: %s.env[name=%s] is set from a reference; volume mode needs a literal path there",
			ErrBindingConflict, ref, field, EnvServiceBindingRoot)
	case e.Value == "" || e.Value == connection.DefaultBindingRoot:
		// ours from an earlier apply, or the user's with our value
		// (co-owning one value is no conflict)
		return connection.DefaultBindingRoot, true, nil
	default:
		return e.Value, false, nil
	}
}

// liveRef is the Secret the live env entry name reads, "" if none.
func liveRef(c corev1.Container, name string) string {
	if e := liveEnv(c, name); e != nil && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
		return e.ValueFrom.SecretKeyRef.Name
	}
	return ""
}

func liveEnv(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// restart decides the restart token to apply and the restarted-at
// annotation to keep or set, recording a restart or a deferral in res.
func (b *Binder) restart(lv *live, members []Member, notBefore time.Time, res *Result) (token, restartedAt string) {
	want := restartToken(members)
	have := lv.template.Annotations[AnnotationRestartToken]
	restartedAt = lv.meta.Annotations[AnnotationRestartedAt]
	bindsFields := slices.ContainsFunc(members, func(m Member) bool { return !m.RestartOnly })
	if want == have || (have == "" && bindsFields) || want == "" {
		// unchanged; a first binding, whose pods roll for the binding
		// anyway; or no member wants restarts any more. A workload only
		// annotated gets its first token as a restart: nothing else of
		// its template changes.
		return want, restartedAt
	}
	now, until := b.now(), notBefore
	if last, err := time.Parse(time.RFC3339, restartedAt); err == nil && last.Add(b.window).After(until) {
		until = last.Add(b.window)
	}
	if now.Before(until) {
		res.DeferredUntil = until
		return have, restartedAt
	}
	res.Restarted = true
	return want, now.UTC().Format(time.RFC3339)
}

// restartToken hashes the (id, token) pairs of the members that take
// restarts; "" when none does.
func restartToken(members []Member) string {
	var pairs [][2]string
	for _, m := range members {
		if m.RestartToken != "" {
			pairs = append(pairs, [2]string{m.ID, m.RestartToken})
		}
	}
	if len(pairs) == 0 {
		return ""
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] })
	b, _ := json.Marshal(pairs) // [][2]string always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// bindingHash hashes what the apply would say, less the hash itself.
func bindingHash(kind connection.WorkloadKind, annotations map[string]string, tmpl *corev1ac.PodTemplateSpecApplyConfiguration) (string, error) {
	b, err := json.Marshal(struct {
		Kind        connection.WorkloadKind                     `json:"kind"`
		Annotations map[string]string                           `json:"annotations"`
		Template    *corev1ac.PodTemplateSpecApplyConfiguration `json:"template"`
	}{kind, annotations, tmpl})
	if err != nil {
		return "", fmt.Errorf("hash binding: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
