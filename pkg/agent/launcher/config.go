package launcher

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

// DefaultJobName is the Job users know from the original extension:
// `kubectl logs job/sc-job -n sc-system`.
const DefaultJobName = "sc-job"

// nonRootUID is the distroless "nonroot" user the sc-job image runs as.
const nonRootUID int64 = 65532

// sc-job's log formats (its SC_LOG_FORMAT).
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// ErrInvalidConfig means the Job could never be created as configured.
var ErrInvalidConfig = errors.New("invalid launcher configuration")

// Config is the Job template, filled from the agent's flags. It has no field
// for arbitrary environment variables or secrets on purpose: sc-job reads
// credential values from the record Secrets itself, so none ever appears in
// a Job spec. The one variable it sets, SC_LOG_FORMAT, is an enumerated value.
type Config struct {
	Namespace string
	JobName   string

	Image            string
	ImagePullPolicy  corev1.PullPolicy
	ImagePullSecrets []corev1.LocalObjectReference
	ServiceAccount   string
	// WatchNamespaces and DeniedNamespaces are the agent's namespace policy
	// (pkg/core/namespaces; Namespace is its release namespace), passed as
	// sc-job's flags of the same names so that sc-job refuses a stored
	// record in a namespace the intake would refuse a request for.
	WatchNamespaces, DeniedNamespaces []string
	// ExtraArgs follow the --namespace, --job-name and namespace policy
	// arguments the launcher always passes (for example --log-level=debug).
	ExtraArgs []string
	// QPS, Burst and Workers size sc-job's API client and its worker pool
	// (its --qps, --burst and --workers); zero leaves sc-job's defaults.
	QPS     float64
	Burst   int
	Workers int
	// Linger is how long an idle sc-job waits for more work before it
	// ends (its --linger), so requests sent one after another share one
	// pod start; zero leaves sc-job's default (end at once). It must stay
	// below ActiveDeadlineSeconds, or a lingering run would be killed.
	Linger time.Duration
	// RestartWindow is sc-job's --restart-window (the least time between
	// two rolling restarts of a bound workload); zero leaves its default.
	RestartWindow time.Duration
	// LogFormat is sc-job's log format (LogFormatText or LogFormatJSON),
	// passed as SC_LOG_FORMAT; empty leaves sc-job's own default.
	LogFormat         string
	Resources         corev1.ResourceRequirements
	NodeSelector      map[string]string
	Tolerations       []corev1.Toleration
	PriorityClassName string

	BackoffLimit          int32
	ActiveDeadlineSeconds int64
	// KeepFailedFor is how long a failed sc-job stays for inspection before
	// it is replaced to retry work that is still pending.
	KeepFailedFor time.Duration
}

// WithDefaults fills what the agent's flags may leave empty.
func (c Config) WithDefaults() Config {
	if c.JobName == "" {
		c.JobName = DefaultJobName
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if c.KeepFailedFor == 0 {
		c.KeepFailedFor = 15 * time.Minute
	}
	return c
}

// Validate rejects a template the API server would refuse or that would
// retry forever.
func (c Config) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace is required"))
	}
	if c.Image == "" {
		errs = append(errs, errors.New("job image is required"))
	}
	if c.ServiceAccount == "" {
		errs = append(errs, errors.New("job service account is required"))
	}
	if c.BackoffLimit < 0 {
		errs = append(errs, fmt.Errorf("backoff limit %d is negative", c.BackoffLimit))
	}
	if c.ActiveDeadlineSeconds < 0 {
		errs = append(errs, fmt.Errorf("active deadline %ds is negative", c.ActiveDeadlineSeconds))
	}
	if c.QPS < 0 || c.Burst < 0 || c.Workers < 0 {
		errs = append(errs, fmt.Errorf("qps %g, burst %d and workers %d must not be negative", c.QPS, c.Burst, c.Workers))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("linger %s is negative", c.Linger))
	}
	if c.ActiveDeadlineSeconds > 0 && c.Linger >= time.Duration(c.ActiveDeadlineSeconds)*time.Second {
		errs = append(errs, fmt.Errorf("linger %s is not below the active deadline of %ds", c.Linger, c.ActiveDeadlineSeconds))
	}
	if c.LogFormat != "" && c.LogFormat != LogFormatText && c.LogFormat != LogFormatJSON {
		errs = append(errs, fmt.Errorf("log format %q is not one of %s, %s", c.LogFormat, LogFormatText, LogFormatJSON))
	}
	// Checked here too: a name holding a comma would split into two.
	if err := (namespaces.Policy{Watch: c.WatchNamespaces, Denied: c.DeniedNamespaces}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.KeepFailedFor < 0 {
		errs = append(errs, fmt.Errorf("keepFailedFor %s is negative", c.KeepFailedFor))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
