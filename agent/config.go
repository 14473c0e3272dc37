package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/leader"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// config is everything the agent is told at start. It holds no secret: the
// NATS password is read from the environment into natsSecret and never
// stored here, so logging a config can never leak it.
type config struct {
	Cluster    string
	Namespace  string
	PodName    string
	Kubeconfig string

	NATSURL   string
	NATSCreds string // path of a .creds file
	NATSUser  string
	// NATSTLS names the CA bundle and client certificate files; any set
	// makes TLS required.
	NATSTLS natsbus.TLSFiles

	LeaseName   string
	MetricsAddr string
	// KubeQPS and KubeBurst size the agent's one Kubernetes client, shared
	// by the intake's store writes, informers and Lease renewals.
	KubeQPS           float64
	KubeBurst         int
	LogLevel          string
	HeartbeatInterval time.Duration
	// Namespaces is where connections may render: the intake refuses
	// requests for other namespaces, sc-job records for them, and drift
	// watches no other.
	Namespaces namespaces.Policy

	Job launcher.Config
}

// natsSecret is the NATS password from SC_NATS_PASSWORD (a secretKeyRef in
// the chart). It is a separate type whose formatting redacts.
type natsSecret string

func (natsSecret) String() string   { return "<redacted>" }
func (natsSecret) GoString() string { return "<redacted>" }

var errUsage = errors.New("usage")

// parseConfig reads flags, with SC_* environment variables as defaults for
// each (flag wins), plus POD_NAME and SC_NATS_USER/SC_NATS_PASSWORD.
func parseConfig(args []string, getenv func(string) string) (config, natsSecret, error) {
	fs := flag.NewFlagSet("sc-agent", flag.ContinueOnError)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c config
	var (
		keepFailed, heartbeat                          string
		backoff, deadline                              string
		resources, nodeSelector, tolerations, pullSecs string
		watch, denied                                  string
		jobQPS, jobBurst, jobWorkers, jobLinger        string
		jobRestartWindow                               string
		kubeQPS, kubeBurst                             string
	)
	fs.StringVar(&c.Cluster, "cluster", env("SC_CLUSTER", ""), "this cluster's id on the control plane (required)")
	fs.StringVar(&c.Namespace, "namespace", env("SC_NAMESPACE", env("POD_NAMESPACE", "sc-system")), "the agent's namespace: records, Job and Lease live here")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "kubeconfig for running outside a cluster; empty: in-cluster config")
	fs.StringVar(&c.NATSURL, "nats-url", env("SC_NATS_URL", ""), "control plane NATS URL(s), comma-separated (required)")
	fs.StringVar(&c.NATSCreds, "nats-creds", env("SC_NATS_CREDS", ""), "path of a NATS .creds file; alternatively SC_NATS_USER and SC_NATS_PASSWORD")
	fs.StringVar(&c.NATSTLS.CAFile, "nats-ca-file", env("SC_NATS_CA_FILE", ""), "CA bundle (PEM) that signed the NATS server's certificate; set, TLS is required")
	fs.StringVar(&c.NATSTLS.CertFile, "nats-cert-file", env("SC_NATS_CERT_FILE", ""), "client certificate (PEM) for a NATS server that verifies clients")
	fs.StringVar(&c.NATSTLS.KeyFile, "nats-key-file", env("SC_NATS_KEY_FILE", ""), "key (PEM) of --nats-cert-file")
	fs.StringVar(&c.LeaseName, "lease-name", env("SC_LEASE_NAME", leader.DefaultLeaseName), "leader election Lease")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("SC_METRICS_ADDR", ":8080"), "address of /healthz, /readyz and /metrics")
	fs.StringVar(&c.LogLevel, "log-level", env("SC_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&heartbeat, "heartbeat-interval", env("SC_HEARTBEAT_INTERVAL", "15s"), "how often the leader publishes a heartbeat")
	fs.StringVar(&watch, "watch-namespaces", env("SC_WATCH_NAMESPACES", ""),
		"comma-separated namespaces connections may target (and drift watches); empty: all but the denied ones")
	fs.StringVar(&denied, "denied-namespaces", env("SC_DENIED_NAMESPACES", ""),
		"comma-separated namespaces connections may never target, besides --namespace, kube-system, kube-public and kube-node-lease")

	fs.StringVar(&c.Job.Image, "job-image", env("SC_JOB_IMAGE", ""), "sc-job image (required)")
	fs.StringVar((*string)(&c.Job.ImagePullPolicy), "job-image-pull-policy", env("SC_JOB_IMAGE_PULL_POLICY", string(corev1.PullIfNotPresent)), "sc-job imagePullPolicy")
	fs.StringVar(&pullSecs, "job-image-pull-secrets", env("SC_JOB_IMAGE_PULL_SECRETS", ""), "comma-separated imagePullSecrets for sc-job")
	fs.StringVar(&c.Job.ServiceAccount, "job-service-account", env("SC_JOB_SERVICE_ACCOUNT", "sc-job"), "sc-job's ServiceAccount")
	fs.StringVar(&backoff, "job-backoff-limit", env("SC_JOB_BACKOFF_LIMIT", "1"), "pod retries within one sc-job run")
	fs.StringVar(&deadline, "job-active-deadline-seconds", env("SC_JOB_ACTIVE_DEADLINE_SECONDS", "600"), "upper bound of one sc-job run")
	fs.StringVar(&keepFailed, "job-keep-failed-for", env("SC_JOB_KEEP_FAILED_FOR", "15m"), "how long a failed sc-job stays before it is retried")
	fs.StringVar(&resources, "job-resources", env("SC_JOB_RESOURCES", ""), "sc-job container resources as JSON")
	fs.StringVar(&nodeSelector, "job-node-selector", env("SC_JOB_NODE_SELECTOR", ""), "sc-job nodeSelector as JSON")
	fs.StringVar(&tolerations, "job-tolerations", env("SC_JOB_TOLERATIONS", ""), "sc-job tolerations as JSON")
	fs.StringVar(&c.Job.LogFormat, "job-log-format", env("SC_JOB_LOG_FORMAT", launcher.LogFormatText), "sc-job log format: text or json")
	fs.StringVar(&c.Job.PriorityClassName, "job-priority-class-name", env("SC_JOB_PRIORITY_CLASS_NAME", ""), "sc-job priorityClassName")
	fs.StringVar(&kubeQPS, "kube-api-qps", env("SC_KUBE_API_QPS", "200"), "the agent's Kubernetes API requests per second")
	fs.StringVar(&kubeBurst, "kube-api-burst", env("SC_KUBE_API_BURST", "400"), "the agent's Kubernetes API request burst")
	fs.StringVar(&jobQPS, "job-qps", env("SC_JOB_QPS", ""), "sc-job's API requests per second (its --qps); empty: sc-job's default")
	fs.StringVar(&jobBurst, "job-burst", env("SC_JOB_BURST", ""), "sc-job's API request burst (its --burst); empty: sc-job's default")
	fs.StringVar(&jobWorkers, "job-workers", env("SC_JOB_WORKERS", ""), "connections sc-job renders in parallel (its --workers); empty: sc-job's default")
	fs.StringVar(&jobLinger, "job-linger", env("SC_JOB_LINGER", ""),
		"how long an idle sc-job waits for more work before it ends (its --linger; Go duration, 0 or more); empty: sc-job's default (end at once)")
	fs.StringVar(&jobRestartWindow, "job-restart-window", env("SC_JOB_RESTART_WINDOW", ""),
		"least time between two rolling restarts sc-job makes of a bound workload (its --restart-window; Go duration); empty: sc-job's default (30s)")

	if err := fs.Parse(args); err != nil {
		return config{}, "", fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return config{}, "", fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}

	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	c.PodName = env("POD_NAME", "")
	if c.PodName == "" {
		h, err := os.Hostname()
		add(err)
		c.PodName = h
	}
	c.NATSUser = getenv("SC_NATS_USER")
	password := natsSecret(getenv("SC_NATS_PASSWORD"))
	if c.Cluster == "" {
		errs = append(errs, errors.New("--cluster is required"))
	}
	if c.NATSURL == "" {
		errs = append(errs, errors.New("--nats-url is required"))
	}
	if c.NATSCreds != "" && c.NATSUser != "" {
		errs = append(errs, errors.New("use either --nats-creds or SC_NATS_USER/SC_NATS_PASSWORD, not both"))
	}
	if (c.NATSUser == "") != (password == "") {
		errs = append(errs, errors.New("SC_NATS_USER and SC_NATS_PASSWORD must be set together"))
	}
	add(natsTLSFlags(c.NATSTLS))
	var err error
	c.HeartbeatInterval, err = positiveDuration("--heartbeat-interval", heartbeat)
	add(err)
	c.Job.KeepFailedFor, err = positiveDuration("--job-keep-failed-for", keepFailed)
	add(err)
	b, err := strconv.ParseInt(backoff, 10, 32)
	add(wrapFlag("--job-backoff-limit", err))
	c.Job.BackoffLimit = int32(b)
	c.Job.ActiveDeadlineSeconds, err = strconv.ParseInt(deadline, 10, 64)
	add(wrapFlag("--job-active-deadline-seconds", err))
	// Not optional: left at 0, client-go would fall back to its 5 QPS.
	add(requiredPositive("--kube-api-qps", kubeQPS, &c.KubeQPS))
	add(requiredPositive("--kube-api-burst", kubeBurst, &c.KubeBurst))
	add(optionalPositive("--job-qps", jobQPS, &c.Job.QPS))
	add(optionalPositive("--job-burst", jobBurst, &c.Job.Burst))
	add(optionalPositive("--job-workers", jobWorkers, &c.Job.Workers))
	c.Job.Linger, err = optionalDuration("--job-linger", jobLinger)
	add(err)
	c.Job.RestartWindow, err = optionalDuration("--job-restart-window", jobRestartWindow)
	add(err)
	add(jsonFlag("--job-resources", resources, &c.Job.Resources))
	add(jsonFlag("--job-node-selector", nodeSelector, &c.Job.NodeSelector))
	add(jsonFlag("--job-tolerations", tolerations, &c.Job.Tolerations))
	for _, name := range list(pullSecs) {
		c.Job.ImagePullSecrets = append(c.Job.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
	}
	if c.Job.LogFormat != launcher.LogFormatText && c.Job.LogFormat != launcher.LogFormatJSON {
		errs = append(errs, fmt.Errorf("--job-log-format: %q is not one of %s, %s", c.Job.LogFormat, launcher.LogFormatText, launcher.LogFormatJSON))
	}
	c.Namespaces = namespaces.Policy{Release: c.Namespace, Watch: list(watch), Denied: list(denied)}
	c.Job.Namespace = c.Namespace
	if err := c.Namespaces.Validate(); err != nil {
		add(err)
	} else {
		// Only when valid: the Job template would report the same names again.
		c.Job.WatchNamespaces, c.Job.DeniedNamespaces = c.Namespaces.Watch, c.Namespaces.Denied
	}
	c.Job.ExtraArgs = []string{"--log-level=" + c.LogLevel}
	c.Job = c.Job.WithDefaults()
	if c.Job.Image == "" {
		errs = append(errs, errors.New("--job-image is required"))
	} else {
		add(c.Job.Validate())
	}
	if len(errs) > 0 {
		return config{}, "", fmt.Errorf("%w: %w", errUsage, errors.Join(errs...))
	}
	return c, password, nil
}

// natsTLSFlags reads the TLS files once so that a missing or broken one
// stops the agent at start, naming the flag and the file; the files are
// read again on every reconnect (rotation).
func natsTLSFlags(f natsbus.TLSFiles) error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("--nats-cert-file and --nats-key-file (SC_NATS_CERT_FILE, SC_NATS_KEY_FILE) must be set together")
	}
	if err := (natsbus.TLSFiles{CAFile: f.CAFile}).Validate(); err != nil {
		return fmt.Errorf("--nats-ca-file: %w", err)
	}
	if err := (natsbus.TLSFiles{CertFile: f.CertFile, KeyFile: f.KeyFile}).Validate(); err != nil {
		return fmt.Errorf("--nats-cert-file/--nats-key-file: %w", err)
	}
	return nil
}

// optionalDuration parses s when set: a duration of zero or more.
func optionalDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, wrapFlag(name, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s must not be negative, got %s", name, s)
	}
	return d, nil
}

func positiveDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, wrapFlag(name, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s must be positive, got %s", name, s)
	}
	return d, nil
}

// optionalPositive parses s into *v when s is set: a finite number (an
// integer for an int) greater than zero. NaN and Inf parse as floats but
// would switch client-go's rate limiter off (NaN fails its QPS > 0 test,
// Inf is a limit that allows everything), here and in sc-job, which gets
// the value verbatim.
func optionalPositive[T int | float64](name, s string, v *T) error {
	if s == "" {
		return nil
	}
	var x T
	var err error
	switch p := any(&x).(type) {
	case *int:
		*p, err = strconv.Atoi(s)
	case *float64:
		*p, err = strconv.ParseFloat(s, 64)
	}
	if err != nil {
		return wrapFlag(name, err)
	}
	if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
		return fmt.Errorf("%s must be positive and finite, got %s", name, s)
	}
	*v = x
	return nil
}

// requiredPositive is optionalPositive for a flag that must be set.
func requiredPositive[T int | float64](name, s string, v *T) error {
	if s == "" {
		return fmt.Errorf("%s must be set", name)
	}
	return optionalPositive(name, s, v)
}

func wrapFlag(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

func jsonFlag(name, s string, out any) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	return wrapFlag(name, dec.Decode(out))
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
