//go:build e2e

package e2e

// The suite's end runs from TestMain after every test, in this order: the
// credential-leak scan over everything the suite produced, the uninstall
// checks, and giving back a release the suite borrowed (helmrelease). It
// needs no test to be last; a problem fails the run with a message on
// stderr.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// suiteEnd runs the end checks on the installed product. Each check runs
// even when an earlier one failed; every failure is returned.
func (e *env) suiteEnd(ctx context.Context, logf func(string, ...any)) error {
	var errs []error
	if err := e.scanForLeaks(ctx, logf); err != nil {
		errs = append(errs, fmt.Errorf("credential-leak scan: %w", err))
	}
	if err := e.checkUninstall(ctx, logf); err != nil {
		errs = append(errs, fmt.Errorf("uninstall check: %w", err))
	}
	return errors.Join(errs...)
}

// scanForLeaks scans every ConfigMap, Event, Job and sc-system Deployment
// and pod, and every sc-system pod log, for each credential value the suite
// sent.
func (e *env) scanForLeaks(ctx context.Context, logf func(string, ...any)) error {
	if len(credValues) == 0 {
		if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
			logf("credential-leak scan skipped: this -run sent no credentials")
			return nil
		}
		return errors.New("the whole suite ran and sent no credential: the scan would prove nothing")
	}
	cs := e.cluster.Clientset
	var haystack []string
	var errs []error
	add := func(what string, v any, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", what, err))
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("encode %s: %w", what, err))
			return
		}
		haystack = append(haystack, what+": "+string(b))
	}
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	add("configmaps", cms, err)
	evs, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	add("events", evs, err)
	jobs, err := cs.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	add("jobs", jobs, err)
	deps, err := cs.AppsV1().Deployments(systemNS).List(ctx, metav1.ListOptions{})
	add("deployments", deps, err)
	pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{})
	add("pods", pods, err)
	if err == nil {
		for _, p := range pods.Items {
			for _, c := range p.Spec.Containers {
				b, err := cs.CoreV1().Pods(systemNS).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
				if err == nil {
					haystack = append(haystack, "log "+p.Name+": "+string(b))
				}
			}
		}
	}
	scanned := 0
	for _, h := range haystack {
		scanned += len(h)
		for _, v := range credValues {
			if strings.Contains(h, v) {
				// Only a prefix of the value: the report must not leak it either.
				errs = append(errs, fmt.Errorf("credential value %s… leaked into %s", v[:14], h[:min(len(h), 60)]))
			}
		}
	}
	logf("credential-leak scan: %d bytes of API objects and logs, %d credential values", scanned, len(credValues))
	return errors.Join(errs...)
}

// checkUninstall: helm uninstall removes the agent and keeps connection
// records and rendered objects, as NOTES.txt says. It then removes what was
// kept on purpose: a record whose namespace is gone would fail every later
// render (a later `make demo`'s install hook included).
func (e *env) checkUninstall(ctx context.Context, logf func(string, ...any)) error {
	cs := e.cluster.Clientset
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "e2e-suite-end-", Labels: restrictedLabels()}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	name := uniq("survivor")
	defer func() {
		bg := context.WithoutCancel(ctx)
		// No agent is left to release the record's status finalizer
		// (docs/store.md): release it by hand, as an operator would.
		_, _ = cs.CoreV1().ConfigMaps(systemNS).Patch(bg, connection.ConfigMapName(name), types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		_ = cs.CoreV1().ConfigMaps(systemNS).Delete(bg, connection.ConfigMapName(name), metav1.DeleteOptions{})
		_ = cs.CoreV1().Secrets(systemNS).Delete(bg, connection.CredentialSecretName(name), metav1.DeleteOptions{})
		_ = cs.CoreV1().Namespaces().Delete(bg, ns.Name, metav1.DeleteOptions{})
	}()
	// service principal: a credential record and a rendered Secret; workload
	// identity would add the ServiceAccount but has no credentials
	spec, creds, err := specFor(name, ns.Name, catalog.TargetStorageBlob, catalog.AuthServicePrincipal, blobID)
	if err != nil {
		return err
	}
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	id, err := e.cp.Create(opCtx, spec, creds)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	ev, err := e.cp.Wait(opCtx, name, id, nil)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", name, err)
	}
	if ev.Phase != connection.PhaseSucceeded {
		return fmt.Errorf("%s: phase %s (%s), want Succeeded", name, ev.Phase, ev.Message)
	}

	if out, err := tryHelm(e.cluster.Kubeconfig, e.helm, "uninstall", release, "-n", systemNS, "--wait", "--timeout", "2m"); err != nil {
		return fmt.Errorf("helm uninstall: %w\n%s", err, out)
	}
	e.uninstalled = true
	var errs []error
	if _, err := cs.AppsV1().Deployments(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("agent Deployment not removed: %w", err))
	}
	if _, err := cs.CoreV1().ConfigMaps(systemNS).Get(ctx, connection.ConfigMapName(name), metav1.GetOptions{}); err != nil {
		errs = append(errs, fmt.Errorf("connection record not kept: %w", err))
	}
	if _, err := cs.CoreV1().Secrets(systemNS).Get(ctx, connection.CredentialSecretName(name), metav1.GetOptions{}); err != nil {
		errs = append(errs, fmt.Errorf("credential record not kept: %w", err))
	}
	if _, err := getSecret(ctx, cs, ns.Name, connection.SecretName(name)); err != nil {
		errs = append(errs, fmt.Errorf("rendered Secret not kept: %w", err))
	}
	if len(errs) == 0 {
		logf("uninstall check: agent removed; record, credential record and rendered Secret kept")
	}
	return errors.Join(errs...)
}

// endTimeout bounds the suite's end: a create, an uninstall and a restore.
const endTimeout = 10 * time.Minute
