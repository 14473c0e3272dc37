package helmrelease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Helm runs the helm CLI with args and returns its combined output.
type Helm func(ctx context.Context, args ...string) (string, error)

// Options say which release to borrow and how to recognise the suite's own.
type Options struct {
	Helm      Helm
	Client    kubernetes.Interface
	Release   string
	Namespace string
	// Marker is the pod annotation the suite sets through the chart's
	// podAnnotations value: a release carrying it is the suite's own.
	Marker string
	// RecordSelector selects the ConfigMaps and Secrets in Namespace that
	// the suite removes before it starts (connection records).
	RecordSelector string
}

// Snapshot is a borrowed release: what Restore gives back.
type Snapshot struct {
	opts       Options
	values     map[string]any
	credential *corev1.Secret // nil when the values name none or it did not exist
	configMaps []corev1.ConfigMap
	secrets    []corev1.Secret
}

// Take returns a snapshot of the release when one is installed that the
// suite did not install, and nil when there is nothing to give back.
func Take(ctx context.Context, o Options) (*Snapshot, error) {
	out, err := o.Helm(ctx, "get", "values", o.Release, "-n", o.Namespace, "-o", "json")
	if err != nil {
		if strings.Contains(out, "release: not found") {
			return nil, nil
		}
		return nil, fmt.Errorf("helm get values %s: %w: %s", o.Release, err, strings.TrimSpace(out))
	}
	values, err := parseValues(out)
	if err != nil {
		return nil, fmt.Errorf("helm get values %s: %w", o.Release, err)
	}
	if !Foreign(values, o.Marker) {
		return nil, nil
	}
	s := &Snapshot{opts: o, values: values}
	if name := CredentialsSecret(values); name != "" {
		sec, err := o.Client.CoreV1().Secrets(o.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			s.credential = sec
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("get Secret %s/%s: %w", o.Namespace, name, err)
		}
	}
	sel := metav1.ListOptions{LabelSelector: o.RecordSelector}
	cms, err := o.Client.CoreV1().ConfigMaps(o.Namespace).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	secs, err := o.Client.CoreV1().Secrets(o.Namespace).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list credential records: %w", err)
	}
	s.configMaps, s.secrets = cms.Items, secs.Items
	return s, nil
}

// parseValues reads `helm get values -o json`, which prints null for a
// release installed without values.
func parseValues(out string) (map[string]any, error) {
	values := map[string]any{}
	if err := json.Unmarshal([]byte(out), &values); err != nil {
		return nil, fmt.Errorf("parse values: %w", err)
	}
	if values == nil {
		values = map[string]any{}
	}
	return values, nil
}

// Foreign reports whether a release with these user-supplied values was
// installed by someone other than the suite: it lacks the suite's marker
// annotation.
func Foreign(values map[string]any, marker string) bool {
	ann, _ := values["podAnnotations"].(map[string]any)
	_, ours := ann[marker]
	return !ours
}

// CredentialsSecret is the NATS credentials Secret the values name, if any.
func CredentialsSecret(values map[string]any) string {
	nats, _ := values["nats"].(map[string]any)
	name, _ := nats["credentialsSecret"].(string)
	return name
}

// Describe says what was borrowed, without any value: for the suite's log.
func (s *Snapshot) Describe() string {
	cred := "none"
	if s.credential != nil {
		cred = s.credential.Name
	}
	return fmt.Sprintf("release %s/%s (values: %s; credentials Secret: %s; %d records)",
		s.opts.Namespace, s.opts.Release, strings.Join(valueKeys(s.values), ","), cred, len(s.configMaps))
}

func valueKeys(v map[string]any) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return []string{"chart defaults"}
	}
	slices.Sort(keys)
	return keys
}

// Restore gives the release back: the suite's records are replaced by the
// saved ones, the credentials Secret is put back, and the release is
// upgraded (or installed again, after an uninstall) with the saved values
// from chart, waiting for its workloads to be Ready. It does every step it
// can and reports every failure.
func (s *Snapshot) Restore(ctx context.Context, chart string) error {
	o := s.opts
	var errs []error
	if err := s.restoreRecords(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.credential != nil {
		if err := recreateSecret(ctx, o.Client, s.credential); err != nil {
			errs = append(errs, fmt.Errorf("restore credentials Secret %s: %w", s.credential.Name, err))
		}
	}
	if err := s.upgrade(ctx, chart); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Snapshot) restoreRecords(ctx context.Context) error {
	o := s.opts
	sel := metav1.ListOptions{LabelSelector: o.RecordSelector}
	cms := o.Client.CoreV1().ConfigMaps(o.Namespace)
	secs := o.Client.CoreV1().Secrets(o.Namespace)
	// The suite's own leftovers point at namespaces that are gone and would
	// fail the chart's render hook; the saved ones are created anew.
	var errs []error
	if list, err := cms.List(ctx, sel); err != nil {
		errs = append(errs, fmt.Errorf("list records: %w", err))
	} else {
		for _, cm := range list.Items {
			if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove record %s: %w", cm.Name, err))
			}
		}
	}
	if list, err := secs.List(ctx, sel); err != nil {
		errs = append(errs, fmt.Errorf("list credential records: %w", err))
	} else {
		for _, sec := range list.Items {
			if err := secs.Delete(ctx, sec.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove credential record %s: %w", sec.Name, err))
			}
		}
	}
	for i := range s.secrets {
		// Credential Secrets first: a record is the commit point of its pair.
		sec := s.secrets[i].DeepCopy()
		sec.ObjectMeta = fresh(sec.ObjectMeta)
		if _, err := secs.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("restore credential record %s: %w", sec.Name, err))
		}
	}
	for i := range s.configMaps {
		cm := s.configMaps[i].DeepCopy()
		cm.ObjectMeta = fresh(cm.ObjectMeta)
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("restore record %s: %w", cm.Name, err))
		}
	}
	return errors.Join(errs...)
}

func recreateSecret(ctx context.Context, cs kubernetes.Interface, saved *corev1.Secret) error {
	c := cs.CoreV1().Secrets(saved.Namespace)
	if err := c.Delete(ctx, saved.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	sec := saved.DeepCopy()
	sec.ObjectMeta = fresh(sec.ObjectMeta)
	_, err := c.Create(ctx, sec, metav1.CreateOptions{})
	return err
}

// fresh keeps what the object's owner wrote (name, labels, annotations) and
// drops what the API server assigned, so the object can be created again.
func fresh(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations}
}

func (s *Snapshot) upgrade(ctx context.Context, chart string) error {
	o := s.opts
	dir, err := os.MkdirTemp("", "sc-helmrelease-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := json.Marshal(s.values)
	if err != nil {
		return err
	}
	// JSON is YAML: helm reads it with -f. The values hold names, never a
	// credential (those live in the Secret), but the file stays private.
	file := filepath.Join(dir, "values.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return err
	}
	out, err := o.Helm(ctx, UpgradeArgs(o.Release, o.Namespace, chart, file)...)
	if err != nil {
		return fmt.Errorf("helm upgrade %s back to its own values: %w: %s", o.Release, err, strings.TrimSpace(out))
	}
	return nil
}

// UpgradeArgs puts the release back on exactly the saved values
// (--reset-values drops the suite's) and waits until its Deployment is
// Ready, i.e. the agent passed its readiness probe against its NATS server.
func UpgradeArgs(release, namespace, chart, valuesFile string) []string {
	return []string{"upgrade", "--install", release, chart, "-n", namespace, "--reset-values", "-f", valuesFile,
		"--wait", "--timeout", "3m"}
}
