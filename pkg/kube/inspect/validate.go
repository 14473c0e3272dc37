package inspect

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Check results, as in protocol.CheckResult.Result.
const (
	Success = "Success"
	Failure = "Failure"
)

// Check names, stable for scripts reading validate's output.
const (
	CheckNamespace      = "TargetNamespace"
	CheckSecret         = "Secret"
	CheckKeys           = "ConfigurationKeys"
	CheckDataHash       = "DataHash"
	CheckSpec           = "MatchesSpec"
	CheckServiceAccount = "ServiceAccount"
	CheckSPC            = "SecretProviderClass"
	CheckPhase          = "ConnectionPhase"
)

// Validate reports the in-cluster state of c check by check. creds may be
// nil: credential keys are then checked for presence only. dyn may be nil
// when c is not keyvaultCsi. Errors talking to the API become failed checks,
// so the report is always complete.
func Validate(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, c connection.Connection, creds connection.Credentials) protocol.ValidateResult {
	r := &report{res: protocol.ValidateResult{Connection: c.Spec.Name, Valid: true}}
	s := c.Spec
	if _, err := client.CoreV1().Namespaces().Get(ctx, s.Scope, metav1.GetOptions{}); err != nil {
		r.fail(CheckNamespace, "namespace %s: %s", s.Scope, apiReason(err))
	} else {
		r.ok(CheckNamespace, "namespace %s exists", s.Scope)
	}
	switch s.AuthInfo.AuthType {
	case catalog.AuthKeyvaultCSI:
		checkSPC(ctx, r, dyn, c)
	default:
		checkSecret(ctx, r, client, c, creds)
		if s.AuthInfo.AuthType == catalog.AuthWorkloadIdentity {
			checkServiceAccount(ctx, r, client, c)
		}
		checkWorkloads(ctx, r, client, c)
	}
	if c.Status.Phase == connection.PhaseSucceeded && c.Deletion == nil {
		r.ok(CheckPhase, "connection is Succeeded at generation %d", c.Generation)
	} else {
		msg := fmt.Sprintf("connection is %s", c.Status.Phase)
		if c.Deletion != nil {
			msg += ", deletion pending"
		}
		if c.Status.Reason != "" {
			msg += " (" + c.Status.Reason + ")"
		}
		if c.Status.Message != "" {
			msg += ": " + c.Status.Message
		}
		r.fail(CheckPhase, "%s", msg)
	}
	return r.res
}

type report struct{ res protocol.ValidateResult }

func (r *report) ok(name, format string, args ...any) {
	r.res.Checks = append(r.res.Checks, protocol.CheckResult{Name: name, Result: Success, Description: fmt.Sprintf(format, args...)})
}

func (r *report) fail(name, format string, args ...any) {
	r.res.Valid = false
	r.res.Checks = append(r.res.Checks, protocol.CheckResult{Name: name, Result: Failure, Description: fmt.Sprintf(format, args...)})
}

func apiReason(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	return err.Error()
}

func checkSecret(ctx context.Context, r *report, client kubernetes.Interface, c connection.Connection, creds connection.Credentials) {
	s := c.Spec
	name := connection.SecretName(s.ID())
	sec, err := client.CoreV1().Secrets(s.Scope).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		r.fail(CheckSecret, "Secret %s/%s: %s", s.Scope, name, apiReason(err))
		return
	}
	ref := connection.ResourceRef{Kind: render.KindSecret, Namespace: s.Scope, Name: name}
	if notOurs, why := NotOurs(c, ref, sec); notOurs {
		// The checks below then describe the replacement, not our Secret.
		r.fail(CheckSecret, "Secret %s/%s exists but is %s (deleted and replaced outside sc-extension; sc-job will not overwrite it)", s.Scope, name, why)
	} else if sec.Labels[render.LabelManagedBy] != render.ManagedByValue || sec.Labels[render.LabelConnection] != s.ID() {
		r.fail(CheckSecret, "Secret %s/%s exists but is not managed by sc-extension for this connection", s.Scope, name)
	} else {
		r.ok(CheckSecret, "Secret %s/%s exists", s.Scope, name)
	}

	var missing []string
	for _, cfg := range s.Configurations {
		if _, ok := sec.Data[s.RenderedKey(cfg.Name)]; !ok {
			missing = append(missing, s.RenderedKey(cfg.Name))
		}
	}
	if len(missing) > 0 {
		r.fail(CheckKeys, "missing keys: %s", strings.Join(missing, ", "))
	} else {
		r.ok(CheckKeys, "all %d configuration keys present", len(s.Configurations))
	}

	if drifted, why := DriftOf(sec, sec.Data); drifted {
		r.fail(CheckDataHash, "%s", why)
	} else {
		r.ok(CheckDataHash, "data matches its %s annotation", render.AnnotationDataHash)
	}

	var differ []string
	checkedCreds := creds != nil
	for _, cfg := range s.Configurations {
		key := s.RenderedKey(cfg.Name)
		got, ok := sec.Data[key]
		if !ok {
			continue // reported above
		}
		switch {
		case !cfg.Credential:
			if string(got) != cfg.Value {
				differ = append(differ, key)
			}
		case checkedCreds:
			// Compare hashes in constant time: not even timing says how
			// much of a credential matched.
			want := sha256.Sum256([]byte(creds[cfg.Name]))
			have := sha256.Sum256(got)
			if subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
				differ = append(differ, key+" (credential)")
			}
		}
	}
	sort.Strings(differ)
	switch {
	case len(differ) > 0:
		r.fail(CheckSpec, "values differ from the connection's spec: %s", strings.Join(differ, ", "))
	case checkedCreds:
		r.ok(CheckSpec, "every value matches the spec (credentials compared by hash)")
	default:
		r.ok(CheckSpec, "every non-credential value matches the spec (credential values not checked)")
	}
}

func checkServiceAccount(ctx context.Context, r *report, client kubernetes.Interface, c connection.Connection) {
	s := c.Spec
	name := connection.ServiceAccountName(s.AuthInfo.ClientID)
	sa, err := client.CoreV1().ServiceAccounts(s.Scope).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		r.fail(CheckServiceAccount, "ServiceAccount %s/%s: %s", s.Scope, name, apiReason(err))
		return
	}
	var problems []string
	ref := connection.ResourceRef{Kind: render.KindServiceAccount, Namespace: s.Scope, Name: name}
	if notOurs, why := NotOurs(c, ref, sa); notOurs {
		problems = append(problems, why)
	}
	if sa.Labels[render.LabelManagedBy] != render.ManagedByValue {
		problems = append(problems, "not managed by sc-extension")
	}
	if !strings.EqualFold(sa.Annotations[render.AnnotationWIClientID], s.AuthInfo.ClientID) {
		problems = append(problems, render.AnnotationWIClientID+" is not "+s.AuthInfo.ClientID)
	}
	if t := s.AuthInfo.TenantID; t != "" && !strings.EqualFold(sa.Annotations[render.AnnotationWITenantID], t) {
		problems = append(problems, render.AnnotationWITenantID+" is not "+t)
	}
	if len(problems) > 0 {
		r.fail(CheckServiceAccount, "ServiceAccount %s/%s: %s", s.Scope, name, strings.Join(problems, "; "))
		return
	}
	r.ok(CheckServiceAccount, "ServiceAccount %s/%s carries the workload identity annotations", s.Scope, name)
}

func checkSPC(ctx context.Context, r *report, dyn dynamic.Interface, c connection.Connection) {
	s := c.Spec
	name := render.SecretProviderClassName(s.ID())
	if dyn == nil {
		r.fail(CheckSPC, "SecretProviderClass %s/%s: cannot check without a dynamic client", s.Scope, name)
		return
	}
	if _, err := dyn.Resource(apply.CRDResource).Get(ctx, render.SPCCRDName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		r.fail(CheckSPC, "the Secret Store CSI driver is not installed: CRD %s not found", render.SPCCRDName)
		return
	}
	u, err := dyn.Resource(apply.SPCResource).Namespace(s.Scope).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		r.fail(CheckSPC, "SecretProviderClass %s/%s: %s", s.Scope, name, apiReason(err))
		return
	}
	want, err := render.Render(c, nil)
	ref := connection.ResourceRef{Kind: render.KindSecretProviderClass, Namespace: s.Scope, Name: name}
	notOurs, why := NotOurs(c, ref, u)
	switch {
	case err != nil:
		r.fail(CheckSPC, "SecretProviderClass %s/%s: the spec does not render: %v", s.Scope, name, err)
	case notOurs:
		r.fail(CheckSPC, "SecretProviderClass %s/%s exists but is %s (deleted and replaced outside sc-extension; sc-job will not overwrite it)", s.Scope, name, why)
	case u.GetLabels()[render.LabelManagedBy] != render.ManagedByValue:
		r.fail(CheckSPC, "SecretProviderClass %s/%s exists but is not managed by sc-extension", s.Scope, name)
	case render.SecretProviderClassHash(u) != render.SecretProviderClassHash(want.SecretProviderClass):
		r.fail(CheckSPC, "SecretProviderClass %s/%s differs from the connection's spec", s.Scope, name)
	default:
		r.ok(CheckSPC, "SecretProviderClass %s/%s matches the spec", s.Scope, name)
	}
}
