package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// dumpClusterState writes, for a failed test, what a human would look at
// with kubectl: nodes, and per namespace a describe-like summary of pods,
// jobs and workloads with their events, the full objects as YAML, and the
// current and previous logs of every container.
func dumpClusterState(ctx context.Context, cs kubernetes.Interface, namespaces []string, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil {
		errs = append(errs, writeYAML(filepath.Join(dir, "nodes.yaml"), nodes))
	} else {
		errs = append(errs, err)
	}
	for _, ns := range namespaces {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			if ignoreNotFound(err) != nil {
				errs = append(errs, err)
			}
			continue // sc-system absent: nothing installed yet
		}
		errs = append(errs, dumpNamespace(ctx, cs, ns, filepath.Join(dir, ns)))
	}
	return errors.Join(errs...)
}

func dumpNamespace(ctx context.Context, cs kubernetes.Interface, ns, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return err
	}
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	lo := metav1.ListOptions{}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, lo)
	keep(err)
	events, err := cs.CoreV1().Events(ns).List(ctx, lo)
	keep(err)
	jobs, err := cs.BatchV1().Jobs(ns).List(ctx, lo)
	keep(err)
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, lo)
	keep(err)
	dss, err := cs.AppsV1().DaemonSets(ns).List(ctx, lo)
	keep(err)
	sts, err := cs.AppsV1().StatefulSets(ns).List(ctx, lo)
	keep(err)
	svcs, err := cs.CoreV1().Services(ns).List(ctx, lo)
	keep(err)
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, lo)
	keep(err)
	sas, err := cs.CoreV1().ServiceAccounts(ns).List(ctx, lo)
	keep(err)
	roles, err := cs.RbacV1().Roles(ns).List(ctx, lo)
	keep(err)
	rbs, err := cs.RbacV1().RoleBindings(ns).List(ctx, lo)
	keep(err)

	for name, obj := range map[string]any{
		"pods": pods, "events": events, "jobs": jobs, "deployments": deps, "daemonsets": dss,
		"statefulsets": sts, "services": svcs, "configmaps": cms, "serviceaccounts": sas,
		"roles": roles, "rolebindings": rbs,
	} {
		keep(writeYAML(filepath.Join(dir, name+".yaml"), obj))
	}

	f, err := os.Create(filepath.Join(dir, "describe.txt"))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer f.Close()
	if pods != nil && events != nil {
		describePods(f, pods.Items, events.Items)
	}
	if jobs != nil {
		for _, j := range jobs.Items {
			fmt.Fprintf(f, "Job %s: active=%d succeeded=%d failed=%d\n", j.Name, j.Status.Active, j.Status.Succeeded, j.Status.Failed)
			for _, c := range j.Status.Conditions {
				fmt.Fprintf(f, "  condition %s=%s reason=%s: %s\n", c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
	if deps != nil {
		for _, d := range deps.Items {
			fmt.Fprintf(f, "Deployment %s: replicas=%d ready=%d available=%d\n", d.Name, d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas)
			for _, c := range d.Status.Conditions {
				fmt.Fprintf(f, "  condition %s=%s reason=%s: %s\n", c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
	if events != nil {
		fmt.Fprintln(f, "\nEvents (oldest first):")
		printEvents(f, events.Items, nil)
	}
	if pods != nil {
		for _, p := range pods.Items {
			keep(dumpPodLogs(ctx, cs, &p, filepath.Join(dir, "logs")))
		}
	}
	return errors.Join(errs...)
}

// describePods prints the facts `kubectl describe pod` shows first.
func describePods(w io.Writer, pods []corev1.Pod, events []corev1.Event) {
	for _, p := range pods {
		fmt.Fprintf(w, "Pod %s: phase=%s node=%s ip=%s reason=%s %s\n", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP, p.Status.Reason, p.Status.Message)
		for _, c := range p.Status.Conditions {
			fmt.Fprintf(w, "  condition %s=%s %s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
		statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
		for _, c := range statuses {
			fmt.Fprintf(w, "  container %s image=%s ready=%t restarts=%d state=%s last=%s\n", c.Name, c.Image, c.Ready, c.RestartCount, stateString(c.State), stateString(c.LastTerminationState))
		}
		uid := p.UID
		printEvents(w, events, func(e corev1.Event) bool { return e.InvolvedObject.UID == uid })
		fmt.Fprintln(w)
	}
}

func stateString(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running since " + s.Running.StartedAt.String()
	case s.Waiting != nil:
		return fmt.Sprintf("waiting(%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(exit %d, %s: %s)", s.Terminated.ExitCode, s.Terminated.Reason, s.Terminated.Message)
	}
	return "-"
}

func printEvents(w io.Writer, events []corev1.Event, keep func(corev1.Event) bool) {
	evs := append([]corev1.Event{}, events...)
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(evs[i]).Time.Before(eventTime(evs[j]).Time) })
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, e := range evs {
		if keep != nil && !keep(e) {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s/%s\t%s\tx%d\t%s\n", eventTime(e).Format("15:04:05"), e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, max(e.Count, 1), strings.TrimSpace(e.Message))
	}
	tw.Flush()
}

func eventTime(e corev1.Event) metav1.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp
	case !e.EventTime.IsZero():
		return metav1.NewTime(e.EventTime.Time)
	}
	return e.CreationTimestamp
}

// dumpPodLogs writes each container's log, and the previous instance's log
// when it restarted (that is usually the crash).
func dumpPodLogs(ctx context.Context, cs kubernetes.Interface, p *corev1.Pod, dir string) error {
	var errs []error
	limit := int64(10 << 20)
	containers := append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...)
	for _, c := range containers {
		for _, previous := range []bool{false, true} {
			b, err := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, Previous: previous, LimitBytes: &limit}).DoRaw(ctx)
			if err != nil {
				continue // not started yet, or no previous instance
			}
			name := p.Name + "_" + c.Name
			if previous {
				name += ".previous"
			}
			errs = append(errs, os.WriteFile(filepath.Join(dir, name+".log"), b, 0o644))
		}
	}
	return errors.Join(errs...)
}

func writeYAML(path string, obj any) error {
	b, err := yaml.Marshal(obj)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b, 0o644)
}
