package jobrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/client-go/metadata"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// StepBind is the step that wires a connection's workloads.
const StepBind = "bind"

// DefaultRestartSettle is how long a restart for new Secret data waits, so
// that connections changed together (a request each, moments apart) roll a
// workload they share once.
const DefaultRestartSettle = 2 * time.Second

// binding is one connection's outcome of the bind step.
type binding struct {
	state *connection.BoundState
	// restartAt, when not zero, is when a held-back restart is due: the
	// connection is then Pending/RestartScheduled until it.
	restartAt time.Time
	// restarted lists the workloads whose restart token this step changed.
	restarted []string
	// newData: this connection's Secret data changed since its last
	// binding (else a restart it made is for a changed binding).
	newData bool
	// secret is the rendered Secret's name, for the restart's Event.
	secret string
}

// bindings serialises the bind step per workload and remembers what this
// run applied for each connection: the records the run watches may not
// show a connection's newest share yet, and another connection's apply of
// the same workload must carry it.
type bindings struct {
	binder *bind.Binder
	settle time.Duration
	// meta lists workloads' metadata for their restart-on-change
	// annotation; nil: the annotation is not looked for.
	meta metadata.Interface

	mu      sync.Mutex
	locks   map[bind.Ref]*sync.Mutex
	applied map[string]*connection.BoundState // by connection id; nil: binds nothing
	// done remembers, per workload, the members this run last reconciled
	// it with and the outcome: a re-render of N connections bound to one
	// workload reads it once, not N times. Guarded by the workload's lock.
	done map[bind.Ref]reconciled
}

type reconciled struct {
	members string
	res     bind.Result
}

func newBindings(b *bind.Binder, settle time.Duration, meta metadata.Interface) *bindings {
	return &bindings{binder: b, settle: settle, meta: meta, locks: map[bind.Ref]*sync.Mutex{},
		applied: map[string]*connection.BoundState{}, done: map[bind.Ref]reconciled{}}
}

// reconcile is the binder's ReconcileNotBefore, skipped when this run
// reconciled ref with the same members already and nothing was held back.
// Only a plain reconcile is remembered: one that waits for a settle time,
// or of a workload with restart-only members (whose tokens depend on the
// connection reconciling), depends on more than the members.
func (b *bindings) reconcile(ctx context.Context, ref bind.Ref, members []bind.Member, notBefore time.Time, tokens bind.Tokens) (bind.Result, error) {
	plain := notBefore.IsZero()
	key := ""
	if plain {
		sorted := slices.Clone(members)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
		k, err := json.Marshal(sorted)
		if err != nil {
			return bind.Result{}, fmt.Errorf("fingerprint members of %s: %w", ref, err)
		}
		key = string(k)
		b.mu.Lock()
		prev, ok := b.done[ref]
		b.mu.Unlock()
		if ok && prev.members == key {
			return prev.res, nil
		}
	}
	res, err := b.binder.ReconcileNotBefore(ctx, ref, members, notBefore, tokens)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err != nil || !plain || !res.DeferredUntil.IsZero() || res.Annotated:
		delete(b.done, ref)
	default:
		memo := res
		memo.Wrote, memo.Restarted = false, false
		b.done[ref] = reconciled{members: key, res: memo}
	}
	return res, err
}

func (b *bindings) lock(ref bind.Ref) func() {
	b.mu.Lock()
	l, ok := b.locks[ref]
	if !ok {
		l = &sync.Mutex{}
		b.locks[ref] = l
	}
	b.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// shareOf is what connection o contributes now: this run's apply if there
// was one, else what its record says was applied.
func (b *bindings) shareOf(o connection.Connection) *connection.BoundState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st, ok := b.applied[o.Spec.ID()]; ok {
		return st
	}
	return o.Status.Bound
}

func (b *bindings) remember(id string, st *connection.BoundState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applied[id] = st
}

// bindWorkloads applies c's binding after its objects were rendered (res):
// every workload it binds now or bound before, each with all its members.
// A restart for new data is held for the settle time; the window in the
// binder spaces restarts further.
func (r *Runner) bindWorkloads(ctx context.Context, log zerolog.Logger, c connection.Connection, objs render.Objects, res apply.Result, all *records) (binding, error) {
	next, err := boundState(c, objs, res)
	if err != nil {
		return binding{}, err
	}
	prev := c.Status.Bound
	own := ownToken(c, objs, res)
	scheduled := c.Status.Reason == connection.ReasonRestartScheduled
	// New data: a bound connection's token moved, or the Secret of one
	// that binds nothing was written.
	newData := (prev != nil && next != nil && prev.RestartToken != "" && next.RestartToken != prev.RestartToken) ||
		(next == nil && secretUpdated(res, objs))
	refs := refsOf(c.Spec.Scope, prev, next)
	if own != "" && (newData || scheduled) {
		annotated, err := r.annotated(ctx, log, c)
		if err != nil {
			return binding{}, err
		}
		refs = appendNew(refs, annotated...)
	}
	if len(refs) == 0 {
		return binding{}, nil
	}
	var notBefore time.Time
	if newData && !scheduled {
		// Let its companions arrive. A connection back for its scheduled
		// restart waited already and goes on.
		notBefore = r.cfg.Now().Add(r.bindings.settle)
	}
	// Back for its scheduled restart, its token is recorded already: the
	// restart it makes is still for new data.
	out := binding{state: next, newData: newData || scheduled}
	if objs.Secret != nil {
		out.secret = objs.Secret.Name
	}
	tokens := r.tokens(c, own, all)
	for _, ref := range refs {
		got, err := r.bindOne(ctx, c, ref, next, all, notBefore, tokens)
		if err != nil {
			return out, err
		}
		if got.Restarted {
			out.restarted = append(out.restarted, ref.String())
		}
		if !got.DeferredUntil.IsZero() && (out.restartAt.IsZero() || got.DeferredUntil.Before(out.restartAt)) {
			out.restartAt = got.DeferredUntil
		}
		log.Debug().Str("step", StepBind).Str("workload", ref.String()).Bool("wrote", got.Wrote).Bool("restarted", got.Restarted).
			Time("deferredUntil", got.DeferredUntil).Msg(say(c, "bound %s", ref))
	}
	r.bindings.remember(c.Spec.ID(), next)
	return out, nil
}

// unbindWorkloads removes a deleted connection's share from every workload
// it bound. A workload that is gone has nothing left to remove.
func (r *Runner) unbindWorkloads(ctx context.Context, c connection.Connection, all *records) error {
	// The spec's workloads too: a run that bound them may have died before
	// it recorded Status.Bound.
	var named *connection.BoundState
	if c.Spec.Binding != nil {
		named = &connection.BoundState{Workloads: c.Spec.Binding.Workloads}
	}
	tokens := r.tokens(c, "", all)
	for _, ref := range refsOf(c.Spec.Scope, c.Status.Bound, named) {
		if _, err := r.bindOne(ctx, c, ref, nil, all, time.Time{}, tokens); err != nil && !errors.Is(err, bind.ErrWorkloadNotFound) {
			return err
		}
	}
	r.bindings.remember(c.Spec.ID(), nil)
	return nil
}

func (r *Runner) bindOne(ctx context.Context, c connection.Connection, ref bind.Ref, next *connection.BoundState, all *records, notBefore time.Time, tokens bind.Tokens) (bind.Result, error) {
	defer r.bindings.lock(ref)()
	var members []bind.Member
	if m, ok := memberOf(c.Spec.Name, c.Spec.ID(), next, ref); ok {
		// Refused, c's share as last applied stays in place.
		if prev, ok := memberOf(c.Spec.Name, c.Spec.ID(), c.Status.Bound, ref); ok && !sameBound(next, c.Status.Bound) {
			m.Previous = &prev
		}
		members = append(members, m)
	}
	if all != nil {
		all.each(func(o connection.Connection) bool {
			if o.Spec.ID() == c.Spec.ID() || o.Spec.Scope != ref.Namespace || o.Deletion != nil {
				return true
			}
			if m, ok := memberOf(o.Spec.Name, o.Spec.ID(), r.bindings.shareOf(o), ref); ok {
				members = append(members, m)
			}
			return true
		})
	}
	res, err := r.bindings.reconcile(ctx, ref, members, notBefore, tokens)
	if err == nil {
		// Another member's refusal is that connection's to report, when
		// it reconciles; the apply carried everyone else.
		err = res.Refusal(c.Spec.ID())
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w", StepBind, err)
	}
	return res, nil
}

// boundState is c's share as this render makes it; nil when c binds nothing.
func boundState(c connection.Connection, objs render.Objects, res apply.Result) (*connection.BoundState, error) {
	b := c.Spec.Binding
	if b == nil || len(b.Workloads) == 0 {
		return nil, nil
	}
	if objs.Secret == nil {
		return nil, fmt.Errorf("%w: a binding needs a rendered Secret (authType %s renders none)", render.ErrIncomplete, c.Spec.AuthInfo.AuthType)
	}
	st := &connection.BoundState{
		Workloads:  slices.Clone(b.Workloads),
		Mode:       b.ModeOrDefault(),
		SecretName: objs.Secret.Name,
	}
	if st.Mode == connection.BindingEnv {
		for _, cfg := range c.Spec.Configurations {
			st.Keys = append(st.Keys, c.Spec.RenderedKey(cfg.Name))
		}
		sort.Strings(st.Keys)
	}
	if c.Spec.AuthInfo.AuthType == catalog.AuthWorkloadIdentity && c.Spec.AuthInfo.ClientID != "" {
		st.ServiceAccount = connection.ServiceAccountName(c.Spec.AuthInfo.ClientID)
	}
	st.RestartToken = ownToken(c, objs, res)
	return st, nil
}

// ownToken is c's restart token as this render leaves its Secret; "" when
// it renders none or opted out of restarts.
func ownToken(c connection.Connection, objs render.Objects, res apply.Result) string {
	if objs.Secret == nil || (c.Spec.Binding != nil && c.Spec.Binding.NoRestart) {
		return ""
	}
	return restartToken(objs.Secret.Annotations[render.AnnotationDataHash], secretUID(res, objs))
}

// restartToken changes exactly when the Secret's data does (or the Secret
// is replaced). The UID keys the hash: a reader of the workload, who need
// not be able to read the Secret, cannot test guesses of its values.
func restartToken(dataHash, uid string) string {
	sum := sha256.Sum256([]byte(uid + "\x00" + dataHash))
	return hex.EncodeToString(sum[:8])
}

func secretUID(res apply.Result, objs render.Objects) string {
	for _, o := range res.Objects {
		if o.Ref.Kind == render.KindSecret && o.Ref.Name == objs.Secret.Name {
			return o.UID
		}
	}
	return ""
}

// memberOf is st's member for the workload ref, false if st does not bind it.
func memberOf(name, id string, st *connection.BoundState, ref bind.Ref) (bind.Member, bool) {
	if st == nil {
		return bind.Member{}, false
	}
	for _, w := range st.Workloads {
		if w.Kind == ref.Kind && w.Name == ref.Name {
			return bind.Member{
				Connection: name, ID: id, Mode: st.Mode, Containers: slices.Clone(w.Containers),
				SecretName: st.SecretName, Keys: slices.Clone(st.Keys), ServiceAccount: st.ServiceAccount, RestartToken: st.RestartToken,
			}, true
		}
	}
	return bind.Member{}, false
}

// refsOf lists the workloads either state binds, in a fixed order.
func refsOf(ns string, states ...*connection.BoundState) []bind.Ref {
	var refs []bind.Ref
	for _, st := range states {
		if st == nil {
			continue
		}
		for _, w := range st.Workloads {
			ref := bind.Ref{Namespace: ns, Kind: w.Kind, Name: w.Name}
			if !slices.Contains(refs, ref) {
				refs = append(refs, ref)
			}
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
	return refs
}

// sameBound: two shares are the same (a re-render that changed nothing).
func sameBound(a, b *connection.BoundState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Mode == b.Mode && a.SecretName == b.SecretName && a.ServiceAccount == b.ServiceAccount &&
		a.RestartToken == b.RestartToken && slices.Equal(a.Keys, b.Keys) &&
		slices.EqualFunc(a.Workloads, b.Workloads, func(x, y connection.Workload) bool {
			return x.Kind == y.Kind && x.Name == y.Name && slices.Equal(x.Containers, y.Containers)
		})
}

func restartNote(b binding) string {
	if len(b.restarted) == 0 {
		return ""
	}
	return "; restarted " + strings.Join(b.restarted, ", ") + " " + restartCause(b)
}

func restartCause(b binding) string {
	if b.newData && b.secret != "" {
		return "for the new data of Secret " + b.secret
	}
	return "for its changed binding"
}
