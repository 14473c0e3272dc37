package main

import (
	"fmt"
	"strings"

	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

// namespacePolicy builds the policy sc-job renders under from the flags
// the agent's launcher (and the Helm hook) pass, the same as the agent's:
// release is --namespace, the lists are comma-separated.
func namespacePolicy(release, watch, denied string) (namespaces.Policy, error) {
	p := namespaces.Policy{Release: release, Watch: list(watch), Denied: list(denied)}
	if err := p.Validate(); err != nil {
		return namespaces.Policy{}, fmt.Errorf("--watch-namespaces/--denied-namespaces: %w", err)
	}
	return p, nil
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
