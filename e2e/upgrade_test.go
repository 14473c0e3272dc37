//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/sc-extension/sc-extension/e2e/testbed/previous"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Upgrades in place (issue 13): the previous release (v0.1.0, built from
// git by e2e/testbed/previous and cached per commit) is installed in place
// of the suite's release, `helm upgrade` moves it to the working tree and
// `helm rollback` back, each while requests are in flight. The suite's
// shared install is put back at the end, also when the test fails.

const (
	agentSelector = "app.kubernetes.io/component=agent"
	// inFlight is how many requests the burst keeps unfinished while a
	// rollout runs; burstCap bounds the creates of one burst.
	inFlight = 5
	burstCap = 60
)

// authCases are one connection per auth type; the test checks they cover
// every auth type the catalog supports.
var authCases = []struct {
	auth     catalog.AuthType
	target   catalog.TargetType
	targetID string
}{
	{catalog.AuthSecret, catalog.TargetStorageBlob, blobID},
	{catalog.AuthWorkloadIdentity, catalog.TargetStorageBlob, blobID},
	{catalog.AuthServicePrincipal, catalog.TargetKeyVault, vaultID},
	{catalog.AuthKeyvaultCSI, catalog.TargetKeyVault, vaultID},
}

// upgradeRun is the state of TestUpgradeFromPreviousRelease.
type upgradeRun struct {
	e       *env
	status  *statusLog
	dyn     dynamic.Interface
	prev    *previous.Release
	stable  map[string]connection.Spec // never touched until the end: rendered objects must keep their resourceVersions
	churn   map[string]connection.Spec // updated once by every burst
	creds   map[string]connection.Credentials
	names   map[string]string // every connection of the test, for the cleanup
	burstNS string
	creates map[string]string // every burst create: name -> request id
}

// TestUpgradeFromPreviousRelease installs v0.1.0 in place of the suite's
// release, creates a connection of every auth type, upgrades to the working
// tree and rolls back to v0.1.0, each with a burst of creates and updates
// in flight during the rollout, and proves after each: every connection
// Succeeded, every request got exactly one final status, the rendered
// objects of untouched connections kept their resourceVersions, and status
// sequence numbers continue. v0.1.0 reads and rewrites records the working
// tree wrote.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	e := product(t)
	ctx := context.Background()
	start := time.Now()
	prev := previousRelease(ctx, t)

	dyn, err := dynamic.NewForConfig(e.cluster.RESTConfig)
	require.NoError(t, err)
	u := &upgradeRun{e: e, dyn: dyn, prev: prev, stable: map[string]connection.Spec{}, churn: map[string]connection.Spec{},
		creds: map[string]connection.Credentials{}, names: map[string]string{}, creates: map[string]string{}}
	u.coverEveryAuthType(t)
	u.installSPCCRD(ctx, t) // keyvaultCsi renders a SecretProviderClass
	stableNS, churnNS := e.targetNamespace(t), e.targetNamespace(t)
	u.burstNS = e.targetNamespace(t)
	e.deleteAllAtCleanup(t, u.names) // after the restore below (cleanups run last-in first-out)
	u.status = e.followStatus(t)

	// From here on the suite's install is gone until restored.
	e.replaceSharedRelease(t, prev, 1)
	v010Revision := u.revision(t)
	u.awaitAgentVersion(t, prev.Version, true)

	// A connection of every auth type, twice: one left alone, one churned.
	sent := map[string]string{}
	for _, c := range authCases {
		for _, set := range []struct {
			specs map[string]connection.Spec
			ns    string
			base  string
		}{{u.stable, stableNS, "upst"}, {u.churn, churnNS, "upch"}} {
			name := uniq(set.base) + strings.ToLower(string(c.auth))
			spec, creds := specOf(t, name, set.ns, c.auth, c.target, c.targetID)
			set.specs[name], u.creds[name], u.names[name] = spec, creds, ""
			id, err := e.cp.Create(ctx, spec, creds)
			require.NoError(t, err)
			sent[name] = id
		}
	}
	u.awaitOutcomes(t, sent)
	e.awaitConverged(t, time.Minute, sent)
	for name, cm := range u.recordMaps(ctx, t, sent) {
		assert.NotContains(t, cm.Data, record.KeySchemaVersion, "%s: v0.1.0 wrote the record", name)
	}
	rendered := u.renderedObjects(ctx, t, stableNS)
	records := u.recordVersions(ctx, t)
	t.Logf("v0.1.0: %d connections Succeeded; %d rendered objects of the untouched ones: %v", len(sent), len(rendered), slices.Sorted(maps.Keys(rendered)))

	// Upgrade to the working tree with requests in flight.
	u.burst(t, "upgrade", "upb", e.helmArgs("upgrade"))
	u.awaitAgentVersion(t, prev.Version, false)
	assert.Equal(t, rendered, u.renderedObjects(ctx, t, stableNS), "the upgrade re-rendered nothing of the untouched connections")
	// The post-upgrade hook renders every record, and writes none whose
	// rendering did not change: not even to migrate it.
	assert.Equal(t, records, u.recordVersions(ctx, t), "the upgrade rewrote no record of an untouched connection")
	u.assertStableUnchanged(t, 1)

	// The working tree now writes the untouched connections' records (an
	// update each), so the rollback meets records only it wrote.
	seqs := u.lastSeqs(namesOf(u.stable))
	updates := u.updateStable(ctx, t, "after-upgrade")
	u.assertUpdated(ctx, t, updates, 2, seqs)
	for name, cm := range u.recordMaps(ctx, t, updates) {
		assert.Equal(t, strconv.Itoa(record.SchemaVersion), cm.Data[record.KeySchemaVersion], "%s: the working tree rewrote the record", name)
	}
	rendered = u.renderedObjects(ctx, t, stableNS)
	records = u.recordVersions(ctx, t)

	// Roll back to v0.1.0 with requests in flight: it takes over records
	// and requests the working tree wrote.
	u.burst(t, "rollback", "rbb", []string{"rollback", release, strconv.Itoa(v010Revision), "-n", systemNS, "--wait", "--timeout", "3m"})
	u.awaitAgentVersion(t, prev.Version, true)
	assert.Equal(t, rendered, u.renderedObjects(ctx, t, stableNS), "the rollback re-rendered nothing of the untouched connections")
	u.logRecordChanges(ctx, t, records, "rollback")
	u.assertStableUnchanged(t, 2)

	// v0.1.0 reads and rewrites records only the working tree wrote: the
	// untouched connections', last updated after the upgrade.
	for name, cm := range u.recordMaps(ctx, t, namesOf(u.stable)) {
		require.Contains(t, cm.Data, record.KeySchemaVersion, "%s: last written by the working tree", name)
	}
	// v0.1.0's agent does not replace a running sc-job of the newer release
	// (docs/releasing.md): one lingering after the rollback would make
	// these writes. Let it end, so the next run is v0.1.0's.
	e.awaitNoSCJobRunning(t)
	seqs = u.lastSeqs(namesOf(u.stable))
	updates = u.updateStable(ctx, t, "after-rollback")
	u.assertUpdated(ctx, t, updates, 3, seqs)
	for name, cm := range u.recordMaps(ctx, t, updates) {
		assert.NotContains(t, cm.Data, record.KeySchemaVersion, "%s: v0.1.0 rewrote the record", name)
	}
	t.Logf("upgrade and rollback: %d burst creates, %d updates of churned and %d of untouched connections; total %s",
		len(u.creates), 2*len(u.churn), 2*len(updates), time.Since(start).Round(time.Second))
}

// updateStable changes every untouched connection's spec and credentials
// once and waits for each request's outcome.
func (u *upgradeRun) updateStable(ctx context.Context, t *testing.T, tag string) map[string]string {
	t.Helper()
	updates := map[string]string{}
	for name, spec := range u.stable {
		spec = changed(spec, tag)
		u.stable[name] = spec
		id, err := u.e.cp.Update(ctx, spec, u.rotate(name))
		require.NoError(t, err)
		updates[name] = id
	}
	u.awaitOutcomes(t, updates)
	return updates
}

// burst runs helm with args and, from the moment the rollout starts a new
// agent pod until the old ones are gone and helm returned, keeps inFlight
// requests unfinished: one update of every churned connection, then
// creates in the burst namespace. The old agent stopping with requests
// unfinished is the proof that they were in flight; then the accounting.
func (u *upgradeRun) burst(t *testing.T, what, prefix string, args []string) {
	t.Helper()
	e := u.e
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cs := e.cluster.Clientset
	old := map[string]bool{}
	pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
	require.NoError(t, err)
	for _, p := range pods.Items {
		old[p.Name] = true
	}
	require.NotEmpty(t, old, "an agent runs before the %s", what)
	// The burst's renders wait at the test's admission webhook until the old
	// agent stops: requests are provably unfinished when it stops, however
	// fast the intake and a warm sc-job finish them otherwise. The hold
	// opens at the stop (below), or at the latest when the test ends.
	hold := e.holdCreates(t, "secrets", u.burstNS, "sc-"+prefix, 0)
	seqs := u.lastSeqs(namesOf(u.churn))
	generation := u.generations(ctx, t)

	type result struct {
		out string
		err error
	}
	helmDone := make(chan result, 1)
	go func() {
		out, err := tryHelm(e.cluster.Kubeconfig, e.helm, args...)
		helmDone <- result{out, err}
	}()
	var (
		done                         *result
		updates                      = map[string]string{}
		creates                      = map[string]string{}
		stopped                      bool
		unfinishedAtStop, sentAtStop int
	)
	all := func() map[string]string {
		m := maps.Clone(creates)
		for n, id := range updates {
			m[n+"#"+id] = id
		}
		return m
	}
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if done == nil {
			select {
			case r := <-helmDone:
				if r.err != nil {
					return false, fmt.Errorf("helm %s: %w\n%s", args[0], r.err, r.out)
				}
				done = &r
			default:
			}
		}
		pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
		if err != nil {
			return false, nil // the API may blink; the next poll asks again
		}
		started, oldLeft, oldStopping := false, 0, false
		for _, p := range pods.Items {
			switch {
			case !old[p.Name]:
				started = true
			case p.DeletionTimestamp != nil:
				oldLeft++
				oldStopping = true
			default:
				oldLeft++
			}
		}
		if oldLeft < len(old) {
			oldStopping = true
		}
		if !started && !oldStopping {
			return false, nil // the rollout has not begun
		}
		if len(updates) == 0 {
			for name, spec := range u.churn {
				spec = changed(spec, what)
				u.churn[name] = spec
				id, err := e.cp.Update(ctx, spec, u.rotate(name))
				if err != nil {
					return false, fmt.Errorf("update %s: %w", name, err)
				}
				updates[name] = id
			}
		}
		if oldStopping && !stopped {
			stopped, sentAtStop, unfinishedAtStop = true, len(updates)+len(creates), unfinished(u.status, all())
			// The hold has done its work. Held any longer, it would stall
			// the release's post-upgrade hook, which renders the burst's
			// records too: helm would wait on the hold, the burst on helm.
			hold.open()
		}
		if done != nil && oldLeft == 0 {
			return true, nil
		}
		if unfinished(u.status, all()) < inFlight && len(creates) < burstCap {
			name := uniq(fmt.Sprintf("%s%d", prefix, len(creates)))
			spec, creds := specOf(t, name, u.burstNS, catalog.AuthSecret, catalog.TargetStorageBlob, blobID)
			u.names[name] = ""
			id, err := e.cp.Create(ctx, spec, creds)
			if err != nil {
				return false, fmt.Errorf("create %s: %w", name, err)
			}
			creates[name], u.creates[name] = id, id
		}
		return false, nil
	})
	require.NoError(t, err, "the %s with requests in flight", what)
	require.True(t, stopped, "the %s replaced the agent pods %v", what, slices.Sorted(maps.Keys(old)))
	t.Logf("%s: the old agent stopped with %d of %d requests sent so far unfinished; %d creates and %d updates in all; %d held creates let through by the hold's time limit",
		what, unfinishedAtStop, sentAtStop, len(creates), len(updates), hold.timedOut())
	require.Positive(t, unfinishedAtStop, "requests were in flight when the old agent stopped")

	// Accounting: exactly one outcome per request, nothing lost.
	u.awaitOutcomes(t, all())
	e.awaitConverged(t, time.Minute, creates)
	e.assertRenderedSecrets(t, u.burstNS, u.creates)
	u.assertUpdated(ctx, t, updates, 0, seqs)
	applied := u.generations(ctx, t)
	for name, id := range updates {
		assert.Greater(t, applied[name], generation[name], "%s: request %s applied", name, id)
	}
}

// awaitOutcomes waits until every request (key -> request id) has a final
// status, then checks each has exactly one outcome, Succeeded. An outcome
// is a final status of the request; the finals of the upgrade hook's
// re-render (sc-job over every record, announced Pending/RenderAll) carry
// the record's last request id too, but are not the request's outcome.
func (u *upgradeRun) awaitOutcomes(t *testing.T, requests map[string]string) {
	t.Helper()
	u.status.awaitHeard(t, 5*time.Minute, requests)
	rerendered := 0
	for key, id := range requests {
		var outcomes []protocol.StatusEvent
		rerender := false
		for _, ev := range u.status.of(strings.SplitN(key, "#", 2)[0]) {
			switch {
			case ev.RequestID != id:
			case ev.Phase == connection.PhasePending && ev.Reason == jobrun.ReasonRenderAll:
				rerender = true
			case finalPhase(ev.Phase) && rerender:
				rerender = false
				rerendered++
			case finalPhase(ev.Phase):
				outcomes = append(outcomes, ev)
			}
		}
		if assert.Len(t, outcomes, 1, "%s (request %s): exactly one outcome", key, id) {
			assert.Equal(t, connection.PhaseSucceeded, outcomes[0].Phase, "%s: %s %s", key, outcomes[0].Reason, outcomes[0].Message)
		}
	}
	t.Logf("%d requests: one outcome each; %d more finals were the upgrade hook's re-render", len(requests), rerendered)
}

// assertUpdated checks each updated connection's record (Succeeded, its
// request id last, generation gen unless 0) and that every status event of
// the update carries a sequence number above the connection's last before
// it, in the same incarnation: statuses continue across versions.
func (u *upgradeRun) assertUpdated(ctx context.Context, t *testing.T, updates map[string]string, gen int64, before map[string]protocol.StatusEvent) {
	t.Helper()
	recs, err := u.e.recordsOf(ctx, updates)
	require.NoError(t, err)
	for name, id := range updates {
		c, ok := recs[name]
		if !assert.True(t, ok, "%s: record", name) {
			continue
		}
		assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, "%s: %s", name, c.Status.Message)
		assert.Equal(t, id, c.Status.LastRequestID, name)
		if gen > 0 {
			assert.EqualValues(t, gen, c.Generation, "%s applied once", name)
		}
		prev := before[name]
		for _, ev := range u.status.of(name) {
			if ev.RequestID != id || ev.Seq == 0 {
				continue // another request's, or an intake event no record describes
			}
			assert.Greater(t, ev.Seq, prev.Seq, "%s: %s/%s of request %s continues the sequence", name, ev.Phase, ev.Reason, id)
			assert.Equal(t, prev.Incarnation, ev.Incarnation, "%s: same record", name)
		}
	}
}

// assertStableUnchanged: the untouched connections are still Succeeded at
// generation gen, as the running agent reads their records.
func (u *upgradeRun) assertStableUnchanged(t *testing.T, gen int64) {
	t.Helper()
	for name := range u.stable {
		var view protocol.ConnectionView
		u.e.query(t, protocol.VerbShow, name, &view)
		assert.Equal(t, connection.PhaseSucceeded, view.Status.Phase, "%s: %s", name, view.Status.Message)
		assert.EqualValues(t, gen, view.Generation, name)
	}
}

// awaitAgentVersion waits until every agent pod runs the previous
// release's image (is) or none does (!is), and the latest heartbeat says so.
func (u *upgradeRun) awaitAgentVersion(t *testing.T, version string, is bool) {
	t.Helper()
	cs := u.e.cluster.Clientset
	tag := ":" + u.prev.ImageTag
	eventually(t, 3*time.Minute, fmt.Sprintf("the agent (v0.1.0: %v) alone to run and report", is), func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
		if err != nil {
			return false, err
		}
		if len(pods.Items) == 0 {
			return false, fmt.Errorf("no agent pod")
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || strings.HasSuffix(p.Spec.Containers[0].Image, tag) != is {
				return false, fmt.Errorf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
			}
		}
		hb, err := u.e.cp.LatestHeartbeat(ctx)
		if err != nil {
			return false, err
		}
		if !hb.Ready || (hb.AgentVersion == version) != is {
			return false, fmt.Errorf("heartbeat of %s: version %s ready %v", hb.Pod, hb.AgentVersion, hb.Ready)
		}
		return true, nil
	})
}

// revision is the release's current revision.
func (u *upgradeRun) revision(t *testing.T) int {
	t.Helper()
	out := runHelm(t, u.e.cluster.Kubeconfig, "history", release, "-n", systemNS, "-o", "json")
	var hist []struct {
		Revision int `json:"revision"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &hist), out)
	require.NotEmpty(t, hist)
	return hist[len(hist)-1].Revision
}

// coverEveryAuthType fails when the catalog supports an auth type the test
// does not create.
func (u *upgradeRun) coverEveryAuthType(t *testing.T) {
	t.Helper()
	supported := map[catalog.AuthType]bool{}
	for _, target := range catalog.Targets() {
		for _, a := range catalog.AuthTypes(target) {
			supported[a] = true
		}
	}
	covered := map[catalog.AuthType]bool{}
	for _, c := range authCases {
		covered[c.auth] = true
	}
	require.Equal(t, supported, covered, "one connection per auth type the catalog supports")
}

// installSPCCRD installs a minimal SecretProviderClass CRD unless the
// cluster has one, and removes it at the end if it installed it.
func (u *upgradeRun) installSPCCRD(ctx context.Context, t *testing.T) {
	t.Helper()
	crds := u.dyn.Resource(apply.CRDResource)
	if _, err := crds.Get(ctx, render.SPCCRDName, metav1.GetOptions{}); err == nil {
		return
	}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": render.SPCCRDName},
		"spec": map[string]any{
			"group": render.SPCGroup, "scope": "Namespaced",
			"names": map[string]any{"plural": render.SPCResource, "singular": "secretproviderclass",
				"kind": render.KindSecretProviderClass, "listKind": "SecretProviderClassList"},
			"versions": []any{map[string]any{"name": render.SPCVersion, "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	_, err := crds.Create(ctx, crd, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = crds.Delete(context.Background(), render.SPCCRDName, metav1.DeleteOptions{}) })
	eventually(t, time.Minute, "the SecretProviderClass API to be served", func(ctx context.Context) (bool, error) {
		_, err := u.dyn.Resource(apply.SPCResource).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil, err
	})
}

// specOf is buildSpec for every auth type: keyvaultCsi also names the vault
// and the objects its SecretProviderClass mounts.
func specOf(t *testing.T, name, ns string, auth catalog.AuthType, target catalog.TargetType, targetID string) (connection.Spec, connection.Credentials) {
	t.Helper()
	spec, creds, err := specFor(name, ns, target, auth, targetID)
	if auth == catalog.AuthKeyvaultCSI {
		spec.SecretStore = &connection.SecretStore{KeyVaultName: "vault1", TenantID: tenantID, UserAssignedID: clientID,
			Objects: []string{"db-password"}}
		err = connection.Validate(spec, creds)
	}
	require.NoError(t, err, "%s spec", auth)
	return spec, creds
}

// changed returns spec with a visible change: its first plain value, or
// for keyvaultCsi (no values) one more mounted object.
func changed(spec connection.Spec, tag string) connection.Spec {
	spec.Configurations = slices.Clone(spec.Configurations)
	for i, c := range spec.Configurations {
		if !c.Credential {
			spec.Configurations[i].Value = "changed-by-" + tag
			return spec
		}
	}
	if spec.SecretStore != nil {
		s := *spec.SecretStore
		s.Objects = append(slices.Clone(s.Objects), "object-"+tag)
		spec.SecretStore = &s
	}
	return spec
}

// rotate gives a connection new credential values (the same keys).
func (u *upgradeRun) rotate(name string) connection.Credentials {
	creds := connection.Credentials{}
	for k := range u.creds[name] {
		creds[k] = newCredential()
	}
	u.creds[name] = creds
	return creds
}

// renderedObjects maps every object sc-extension rendered into ns (Secrets,
// ServiceAccounts, SecretProviderClasses) to its resourceVersion.
func (u *upgradeRun) renderedObjects(ctx context.Context, t *testing.T, ns string) map[string]string {
	t.Helper()
	cs := u.e.cluster.Clientset
	sel := metav1.ListOptions{LabelSelector: connection.LabelManagedBy + "=" + render.ManagedByValue}
	out := map[string]string{}
	secs, err := cs.CoreV1().Secrets(ns).List(ctx, sel)
	require.NoError(t, err)
	for _, s := range secs.Items {
		out["Secret/"+s.Name] = s.ResourceVersion
	}
	sas, err := cs.CoreV1().ServiceAccounts(ns).List(ctx, sel)
	require.NoError(t, err)
	for _, s := range sas.Items {
		out["ServiceAccount/"+s.Name] = s.ResourceVersion
	}
	spcs, err := u.dyn.Resource(apply.SPCResource).Namespace(ns).List(ctx, sel)
	require.NoError(t, err)
	for _, s := range spcs.Items {
		out["SecretProviderClass/"+s.GetName()] = s.GetResourceVersion()
	}
	return out
}

// recordVersions maps the untouched connections' records (ConfigMap and
// credential Secret) to their resourceVersions.
func (u *upgradeRun) recordVersions(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	cs := u.e.cluster.Clientset
	out := map[string]string{}
	for name := range u.stable {
		cm, err := cs.CoreV1().ConfigMaps(systemNS).Get(ctx, connection.ConfigMapName(connection.ObjectID(name)), metav1.GetOptions{})
		require.NoError(t, err)
		out["ConfigMap/"+cm.Name] = cm.ResourceVersion
		sec, err := cs.CoreV1().Secrets(systemNS).Get(ctx, connection.CredentialSecretName(connection.ObjectID(name)), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // workload identity and keyvaultCsi carry no credentials
		}
		require.NoError(t, err)
		out["Secret/"+sec.Name] = sec.ResourceVersion
	}
	return out
}

// logRecordChanges reports which records of the untouched connections were
// written since the given versions were taken (v0.1.0's render hook marks
// every record; this release's writes none it did not change; credential
// records change only with credentials).
func (u *upgradeRun) logRecordChanges(ctx context.Context, t *testing.T, before map[string]string, what string) {
	t.Helper()
	var rewritten []string
	for k, v := range u.recordVersions(ctx, t) {
		if before[k] != v {
			rewritten = append(rewritten, k)
		}
	}
	slices.Sort(rewritten)
	t.Logf("after the %s, %d of %d records of untouched connections were rewritten since v0.1.0 created them: %v",
		what, len(rewritten), len(before), rewritten)
}

// recordMaps returns the record ConfigMaps of the named connections.
func (u *upgradeRun) recordMaps(ctx context.Context, t *testing.T, names map[string]string) map[string]*corev1.ConfigMap {
	t.Helper()
	out := map[string]*corev1.ConfigMap{}
	for name := range names {
		cm, err := u.e.cluster.Clientset.CoreV1().ConfigMaps(systemNS).Get(ctx, connection.ConfigMapName(connection.ObjectID(name)), metav1.GetOptions{})
		require.NoError(t, err, name)
		out[name] = cm
	}
	return out
}

// lastSeqs returns the last status event heard of each connection.
func (u *upgradeRun) lastSeqs(names map[string]string) map[string]protocol.StatusEvent {
	out := map[string]protocol.StatusEvent{}
	for name := range names {
		for _, ev := range u.status.of(name) {
			if ev.Seq > out[name].Seq {
				out[name] = ev
			}
		}
	}
	return out
}

// generations maps each churned connection to its record's generation.
func (u *upgradeRun) generations(ctx context.Context, t *testing.T) map[string]int64 {
	t.Helper()
	recs, err := u.e.recordsOf(ctx, namesOf(u.churn))
	require.NoError(t, err)
	out := map[string]int64{}
	for name, c := range recs {
		out[name] = c.Generation
	}
	return out
}

func namesOf(specs map[string]connection.Spec) map[string]string {
	out := map[string]string{}
	for name := range specs {
		out[name] = ""
	}
	return out
}
