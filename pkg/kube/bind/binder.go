package bind

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// FieldManager is the one field manager of every binding write: server-side
// apply then tracks, per field, which of them are ours.
const FieldManager = "sc-extension-binding"

// Annotations the binding writes.
const (
	// AnnotationRestartToken (pod template) is a hash over the members'
	// restart tokens; changing it rolls the pods.
	AnnotationRestartToken = "servicelinker.sc-extension.io/restart-token"
	// AnnotationRestartedAt (workload, RFC 3339) is the last restart the
	// binding caused.
	AnnotationRestartedAt = "servicelinker.sc-extension.io/restarted-at"
	// AnnotationBindingHash (workload) hashes the applied configuration:
	// when a GET shows it unchanged, there is nothing to write.
	AnnotationBindingHash = "servicelinker.sc-extension.io/binding-hash"
)

// LabelWorkloadIdentityUse on the pod template makes the workload identity
// webhook project the ServiceAccount's token into the pods.
const LabelWorkloadIdentityUse = "azure.workload.identity/use"

// EnvServiceBindingRoot is where servicebinding.io applications look for
// their bindings.
const EnvServiceBindingRoot = "SERVICE_BINDING_ROOT"

// DefaultWindow is the least time between two restarts the binding causes.
const DefaultWindow = 30 * time.Second

// Binder applies workload bindings. It holds no state between calls:
// callers serialise the calls for one workload (sc-job's per-workload lock).
type Binder struct {
	client kubernetes.Interface
	window time.Duration
	now    func() time.Time
}

// NewBinder returns a Binder writing through client. window <= 0 means
// DefaultWindow; now nil means time.Now.
func NewBinder(client kubernetes.Interface, window time.Duration, now func() time.Time) *Binder {
	if window <= 0 {
		window = DefaultWindow
	}
	if now == nil {
		now = time.Now
	}
	return &Binder{client: client, window: window, now: now}
}

// Result is what Reconcile did.
type Result struct {
	// Wrote: one apply was sent (false: the binding was already in place).
	Wrote bool
	// Restarted: the restart token changed, so the pods roll for a
	// Secret's new data. A first binding carries its token from the start
	// and does not count.
	Restarted bool
	// DeferredUntil, when not zero, is when a restart the window held back
	// is due; the rest of the binding was applied. Call again then.
	DeferredUntil time.Time
	// Containers are the containers bound, sorted.
	Containers []string
	// Annotated: the workload names connections in its
	// AnnotationRestartOnChange, so its members depend on their tokens as
	// well as on the members passed.
	Annotated bool
	// Refused are the members left out, by connection id, each with the
	// refusal naming the field and the reason (Permanent). The others are
	// applied all the same: one connection's bad share (a renamed
	// container, a key a user's env var already has) must not fail every
	// connection bound to the same workload.
	Refused map[string]error
}

// Refusal is the refusal of member id, nil if it was applied.
func (r Result) Refusal(id string) error { return r.Refused[id] }

// Reconcile makes the binding of the workload ref exactly members: every
// connection bound to it, in any order. Empty members removes whatever the
// binding added earlier. It reads the workload once and writes it at most
// once; see the package comment for what is written. A member whose share
// cannot be applied is left out and reported in Result.Refused; the error
// is for the workload as a whole (missing, unreadable, the apply failed).
func (b *Binder) Reconcile(ctx context.Context, ref Ref, members []Member) (Result, error) {
	return b.ReconcileNotBefore(ctx, ref, members, time.Time{}, nil)
}

// ReconcileNotBefore is Reconcile with a restart held back until notBefore
// as well as by the window: sc-job holds a restart for a moment after a
// Secret's data changed, so connections that change together (one
// request each, a second apart) roll the workload once. With tokens, the
// connections the workload's AnnotationRestartOnChange names are
// restart-only members besides members.
func (b *Binder) ReconcileNotBefore(ctx context.Context, ref Ref, members []Member, notBefore time.Time, tokens Tokens) (Result, error) {
	ops, err := opsFor(ref.Kind)
	if err != nil {
		return Result{}, fmt.Errorf("bind %s: %w", ref, err)
	}
	members = slices.Clone(members)
	sort.SliceStable(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	refused := map[string]error{}
	lv, err := ops.get(ctx, b.client, ref.Namespace, ref.Name)
	switch {
	case apierrors.IsNotFound(err):
		if len(members) == 0 {
			return Result{}, nil
		}
		return Result{}, fmt.Errorf("%w: %s", ErrWorkloadNotFound, ref)
	case err != nil:
		return Result{}, fmt.Errorf("read %s: %w", ref, err)
	}
	if members, err = withAnnotated(ctx, ref, lv, members, tokens); err != nil {
		return Result{}, err
	}
	annotated := len(RestartOnChange(lv.meta.Annotations)) > 0
	sort.SliceStable(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	cfg, res, members, err := b.fit(ops, ref, lv, members, notBefore, refused)
	switch {
	case err != nil && !errors.As(err, new(*refusal)):
		return Result{}, err
	case len(members) == 0:
		if !managesAny(lv.meta.ManagedFields, FieldManager) {
			return withRefused(Result{Annotated: annotated}, refused), nil
		}
		if err := b.apply(ctx, ops, ref, nil); err != nil {
			return Result{}, err
		}
		return withRefused(Result{Wrote: true, Annotated: annotated}, refused), nil
	}
	res = withRefused(res, refused)
	res.Annotated = annotated
	if lv.meta.Annotations[AnnotationBindingHash] == cfg.annotations[AnnotationBindingHash] {
		return res, nil
	}
	if err := b.apply(ctx, ops, ref, cfg); err != nil {
		return Result{}, err
	}
	res.Wrote = true
	return res, nil
}

// fit builds the configuration of members, leaving out the member each
// refusal blames (or putting its Previous share in its place) until the
// rest fits: pure computation, no API call repeats. The members left are
// returned; err is a refusal only when none is.
func (b *Binder) fit(ops kindOps, ref Ref, lv *live, members []Member, notBefore time.Time, refused map[string]error) (*config, Result, []Member, error) {
	for {
		cfg, res, err := b.desired(ops, ref, lv, members, notBefore)
		var r *refusal
		if !errors.As(err, &r) || len(members) == 0 {
			return cfg, res, members, err
		}
		if _, seen := refused[r.id]; !seen {
			refused[r.id] = r.err
		}
		i := slices.IndexFunc(members, func(m Member) bool { return m.ID == r.id })
		if prev := members[i].Previous; prev != nil {
			members[i] = *prev // with no Previous of its own: refused again, it goes
			continue
		}
		if members = slices.Delete(members, i, i+1); len(members) == 0 {
			return nil, Result{}, nil, err
		}
	}
}

func withRefused(res Result, refused map[string]error) Result {
	if len(refused) > 0 {
		res.Refused = refused
	}
	return res
}

// checkKeys refuses an env-mode key no container could carry. The strict (pre-1.34) rule: clusters that relax it still
// accept every name it allows.
func checkKeys(ref Ref, m Member) error {
	if m.Mode == connection.BindingVolume {
		return nil
	}
	for _, k := range m.Keys {
		if msgs := validation.IsEnvVarName(k); len(msgs) > 0 {
			return fmt.Errorf("%w: %s: connection %s renders key %q, which cannot be an env var name in env mode (%s); rename it with customizedKeys or bind in volume mode",
				ErrInvalidEnvName, ref, m.Connection, k, strings.Join(msgs, "; "))
		}
	}
	return nil
}

func (b *Binder) apply(ctx context.Context, ops kindOps, ref Ref, cfg *config) error {
	err := ops.apply(ctx, b.client, ref.Namespace, ref.Name, cfg, metav1.ApplyOptions{FieldManager: FieldManager, Force: false})
	switch {
	case err == nil:
		return nil
	case apierrors.IsConflict(err):
		// The API server's message names each field and its manager.
		return fmt.Errorf("%w: %s: %w", ErrBindingConflict, ref, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %s", ErrWorkloadNotFound, ref)
	case apierrors.IsInvalid(err):
		// An apply to a workload deleted since the GET creates it from our
		// fields alone, which is invalid: report what happened.
		if _, gerr := ops.get(ctx, b.client, ref.Namespace, ref.Name); apierrors.IsNotFound(gerr) {
			return fmt.Errorf("%w: %s (deleted while binding)", ErrWorkloadNotFound, ref)
		}
	}
	return fmt.Errorf("apply binding to %s: %w", ref, err)
}
