package bind

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// AnnotationRestartOnChange on a workload (its own metadata) names
// connections of its namespace, comma-separated, whose Secret data changes
// restart it like a binding's, without binding anything: for workloads that
// read the Secret themselves (envFrom written by hand, a volume, the API).
const AnnotationRestartOnChange = "servicelinker.sc-extension.io/restart-on-change"

// Tokens gives the current restart token of the connection named name in
// namespace ns, and its object id; ok is false for a connection that has
// no rendered Secret (not yet, or not any more), which then takes no part.
type Tokens func(ctx context.Context, ns, name string) (id, token string, ok bool, err error)

// RestartOnChange lists the connections a workload's annotation names.
func RestartOnChange(annotations map[string]string) []string {
	var names []string
	for _, n := range strings.Split(annotations[AnnotationRestartOnChange], ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// withAnnotated adds a restart-only member for every connection lv's
// annotation names that is not a member already. Every reconcile of the
// workload does it, so its restart token always covers the same members.
func withAnnotated(ctx context.Context, ref Ref, lv *live, members []Member, tokens Tokens) ([]Member, error) {
	if tokens == nil {
		return members, nil
	}
	for _, name := range RestartOnChange(lv.meta.Annotations) {
		if slices.ContainsFunc(members, func(m Member) bool { return m.Connection == name }) {
			continue
		}
		id, token, ok, err := tokens(ctx, ref.Namespace, name)
		if err != nil {
			return nil, fmt.Errorf("%s: restart token of connection %s (%s): %w", ref, name, AnnotationRestartOnChange, err)
		}
		if ok {
			members = append(members, Member{Connection: name, ID: id, RestartOnly: true, RestartToken: token})
		}
	}
	return members, nil
}

// workloadResources are the four kinds as the API serves them.
var workloadResources = map[connection.WorkloadKind]schema.GroupVersionResource{
	connection.WorkloadDeployment:  {Group: "apps", Version: "v1", Resource: "deployments"},
	connection.WorkloadStatefulSet: {Group: "apps", Version: "v1", Resource: "statefulsets"},
	connection.WorkloadDaemonSet:   {Group: "apps", Version: "v1", Resource: "daemonsets"},
	connection.WorkloadCronJob:     {Group: "batch", Version: "v1", Resource: "cronjobs"},
}

// Annotated lists the workloads of ns whose restart-on-change annotation
// names the connection name. It reads metadata only: neither the pod
// templates nor their env of the namespace's workloads.
func Annotated(ctx context.Context, meta metadata.Interface, ns, name string) ([]Ref, error) {
	var refs []Ref
	for _, kind := range connection.WorkloadKinds {
		list, err := meta.Resource(workloadResources[kind]).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", workloadResources[kind].Resource, ns, err)
		}
		for _, o := range list.Items {
			if slices.Contains(RestartOnChange(o.Annotations), name) {
				refs = append(refs, Ref{Namespace: ns, Kind: kind, Name: o.Name})
			}
		}
	}
	return refs, nil
}
