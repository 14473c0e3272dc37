// Command probe checks, from inside a pod, that the API server is reachable
// through the in-cluster configuration (KUBERNETES_SERVICE_HOST, the
// `kubernetes` Service, the mounted ServiceAccount token) and that the pod's
// ServiceAccount may list pods in its namespace. It prints one result line
// and exits 0 on success, 1 on failure, so a Job running it fails visibly.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const nsFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func main() {
	if err := run(); err != nil {
		fmt.Printf("probe: in-cluster API call FAILED: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("in-cluster config: %w", err)
	}
	cfg.UserAgent = "sc-extension-probe"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	b, err := os.ReadFile(nsFile)
	if err != nil {
		return fmt.Errorf("read namespace: %w", err)
	}
	ns := strings.TrimSpace(string(b))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods in %s via %s: %w", ns, cfg.Host, err)
	}
	fmt.Printf("probe: in-cluster API call succeeded: listed %d pods in namespace %s via %s as uid %d\n", len(pods.Items), ns, cfg.Host, os.Getuid())
	return nil
}
