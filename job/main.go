// Command sc-job renders sc-extension's pending connections into their
// target namespaces and exits: 0 when every connection succeeded (the Job
// then deletes itself), 1 when one failed or the run could not proceed, 2 on
// a usage or configuration error. The logic lives in pkg/job/jobrun.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
	"github.com/sc-extension/sc-extension/pkg/logging"
	"github.com/sc-extension/sc-extension/pkg/version"
)

const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2

	failuresFail   = "fail"
	failuresReport = "report"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("sc-job", flag.ContinueOnError)
	namespace := fs.String("namespace", envOr("SC_NAMESPACE", "sc-system"), "namespace of the connection records and of this Job (env SC_NAMESPACE)")
	jobName := fs.String("job-name", envOr("SC_JOB_NAME", "sc-job"), "this Job's name, deleted when every connection succeeded; empty keeps it (env SC_JOB_NAME)")
	logLevel := fs.String("log-level", envOr("SC_LOG_LEVEL", "info"), "debug, info, warn or error (env SC_LOG_LEVEL)")
	logFormat := fs.String("log-format", envOr("SC_LOG_FORMAT", logging.FormatText), "text (a line per step for kubectl logs) or json (for log pipelines) (env SC_LOG_FORMAT)")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig for running outside a cluster; empty uses the in-cluster config")
	renderAll := fs.Bool("render-all", false, "also re-render every settled connection, writing only what changed (Helm install/upgrade hook)")
	failures := fs.String("connection-failures", envOr("SC_CONNECTION_FAILURES", failuresFail),
		"fail: a connection failing anew exits 1 and keeps the Job for kubectl logs; report: exit 0 and leave the failure in the "+
			"connection's status and Events (the Helm hook: a tenant's connection never fails helm upgrade) (env SC_CONNECTION_FAILURES)")
	watch := fs.String("watch-namespaces", envOr("SC_WATCH_NAMESPACES", ""),
		"comma-separated namespaces connections may render into; empty: all but the denied ones (env SC_WATCH_NAMESPACES)")
	denied := fs.String("denied-namespaces", envOr("SC_DENIED_NAMESPACES", ""),
		"comma-separated namespaces connections never render into, besides --namespace, kube-system, kube-public and kube-node-lease (env SC_DENIED_NAMESPACES)")
	// Sized so that 1,000 new connections render in seconds (a connection
	// costs about 7 requests: 3 reads, the rendered object, the status
	// read and write); the API server's priority and fairness still
	// queues a client that asks too much. Measured on 2 cores: 500
	// connections in 28 s at 100/s, 13 s at 200/s, 7 s at 500/s.
	workers := fs.Int("workers", 16, "connections rendered in parallel")
	qps := fs.Float64("qps", 500, "API requests per second for due work (new, changed, deleted connections, ended backoffs) and the run itself")
	burst := fs.Int("burst", 1000, "API request burst for due work")
	// The --render-all re-render has a budget of its own, smaller, so a
	// request made during a Helm upgrade's re-render neither queues behind
	// its requests in one token bucket nor finds the API server busy with
	// them. Measured against an API server on 2 shared cores while ~500
	// to 2,500 unchanged connections were re-rendered and connections
	// created one after another (BenchmarkCreateDuringReRender, 2-4 runs):
	// create -> Succeeded p50 38-49 ms idle; 154-241 ms with one budget
	// for both; 142-191 ms with a second one at 500/s (the API server,
	// not the token bucket, is then the limit); 48-107 ms at 300/s; 58-74
	// ms at 200/s, where the re-render takes about 70 connections a
	// second (10,000 in about 2.5 minutes, against 35 to 55 s with one
	// budget; the hook's activeDeadlineSeconds defaults to 600).
	rerenderQPS := fs.Float64("rerender-qps", 200,
		"API requests per second for the --render-all re-render of settled connections, besides --qps (the API server may see both); 0 shares --qps's budget")
	rerenderBurst := fs.Int("rerender-burst", 200, "API request burst for the re-render")
	linger := fs.Duration("linger", 0,
		"how long an idle run waits for more work before it ends, so a burst of requests costs one pod start; 0 ends it at once")
	maxRun := fs.Duration("max-run", jobrun.DefaultMaxRun,
		"after this long a run takes no newly due work and stops lingering (the agent starts the next run for it); keep it below the Job's activeDeadlineSeconds")
	restartWindow := fs.Duration("restart-window", bind.DefaultWindow,
		"least time between two rolling restarts of a bound workload for new Secret data")
	restartSettle := fs.Duration("restart-settle", jobrun.DefaultRestartSettle,
		"how long such a restart waits after the data changed, so connections changed together restart a workload once")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	log, summary, err := newLog(os.Stdout, *logFormat, *logLevel)
	if *failures != failuresFail && *failures != failuresReport {
		fmt.Fprintf(os.Stderr, "sc-job: invalid flags: --connection-failures %q is not %s or %s\n", *failures, failuresFail, failuresReport)
		return exitUsage
	}
	if err != nil || *namespace == "" || *workers < 1 || *qps <= 0 || *burst < 1 || *rerenderQPS < 0 || (*rerenderQPS > 0 && *rerenderBurst < 1) || *linger < 0 || *maxRun <= 0 || *restartWindow <= 0 || *restartSettle <= 0 {
		fmt.Fprintf(os.Stderr, "sc-job: invalid flags: --log-format %q, --log-level %q, --namespace %q, --workers %d, --qps %g, --burst %d, --rerender-qps %g, --rerender-burst %d, --linger %s, --max-run %s, --restart-window %s, --restart-settle %s\n",
			*logFormat, *logLevel, *namespace, *workers, *qps, *burst, *rerenderQPS, *rerenderBurst, *linger, *maxRun, *restartWindow, *restartSettle)
		return exitUsage
	}
	policy, err := namespacePolicy(*namespace, *watch, *denied)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sc-job: invalid flags: %v\n", err)
		return exitUsage
	}
	// client-go's own messages (throttling, retries) land in the same
	// stream and format instead of klog's text on stderr.
	logging.RouteKlog(log)
	log.Debug().Str("version", version.Version).Msg("sc-job starting")

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		log.Error().Err(err).Msg("no Kubernetes configuration")
		return exitUsage
	}
	cfg.UserAgent = "sc-job/" + version.Version
	limit(cfg, *qps, *burst, *rerenderQPS, *rerenderBurst)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error().Err(err).Msg("build Kubernetes client")
		return exitUsage
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		log.Error().Err(err).Msg("build dynamic client")
		return exitUsage
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		log.Error().Err(err).Msg("build metadata client")
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	runner, err := jobrun.New(jobrun.Config{
		Client: client, Dynamic: dyn, Namespace: *namespace, Namespaces: policy, JobName: *jobName,
		RenderAll: *renderAll, Workers: *workers, Linger: *linger, MaxRun: *maxRun, Instance: os.Getenv("POD_NAME"), Log: log, Summary: summary,
		RestartWindow: *restartWindow, RestartSettle: *restartSettle, Metadata: meta,
	})
	if err != nil {
		log.Error().Err(err).Msg("configure sc-job")
		return exitUsage
	}
	_, err = runner.Run(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, jobrun.ErrFailed) && *failures == failuresReport:
		// Each failed connection carries its reason, lastFailure and a
		// Warning Event; the run itself did its job.
		return exitOK
	case errors.Is(err, jobrun.ErrFailed):
		return exitFailed
	default:
		log.Error().Err(err).Msg("sc-job could not complete")
		return exitFailed
	}
}

// newLog builds sc-job's logger on w. In text mode the run ends with the
// plain summary line on w as well; in JSON mode (summary nil) the summary is
// a JSON entry like every other line.
func newLog(w io.Writer, format, level string) (zerolog.Logger, io.Writer, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), nil, fmt.Errorf("log level: %w", err)
	}
	// A text line is read by people in `kubectl logs job/sc-job`: the
	// connection, its namespace and the step are in the message's words.
	log, err := logging.New(w, format, "component", "connection", "objectId", "namespace", "generation", "requestId", "step")
	if err != nil {
		return zerolog.Nop(), nil, err
	}
	log = log.Level(lvl).With().Str("component", "sc-job").Logger()
	if format == logging.FormatJSON {
		return log, nil, nil
	}
	return log, w, nil
}

// limit sets cfg's rate: due work's budget (qps, burst) and the
// re-render's (none: it shares due work's), in one limiter shared by the
// typed and the dynamic client, so each budget is the run's whichever
// client a request goes through.
func limit(cfg *rest.Config, qps float64, burst int, rerenderQPS float64, rerenderBurst int) {
	cfg.QPS, cfg.Burst = float32(qps), burst
	var rerender flowcontrol.RateLimiter
	if rerenderQPS > 0 {
		rerender = flowcontrol.NewTokenBucketRateLimiter(float32(rerenderQPS), rerenderBurst)
	}
	cfg.RateLimiter = jobrun.NewLimiter(flowcontrol.NewTokenBucketRateLimiter(float32(qps), burst), rerender)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
