//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
)

// benchAtScale is BENCH_SCALE's run (issue 9: 10,000 connections): all of
// them Succeeded, the agent's memory idle, after and at its peak, and how
// long `scctl connection list` takes to walk every page, all and one
// namespace's; then the upgrade re-render and new work first over the N.
// It adds its rows to rep.
func (e *env) benchAtScale(t *testing.T, rep *report, n, nsCount int) {
	mem := e.agentMemory(t)
	idle := mem.read(t)
	peakFromHere := mem.resetPeak(t)
	bulk := e.benchBulk(t, "scale", n, nsCount)
	after := mem.read(t)
	rep.row(fmt.Sprintf("%d connections / %d namespaces, requests sent -> all Succeeded", n, nsCount), bulk.wall.Round(time.Millisecond).String(), "", "")
	rep.row(fmt.Sprintf("agent RSS idle / after %d / peak%s", n, peakNote(peakFromHere, n)),
		fmt.Sprintf("%s / %s / %s", mib(idle.RSS), mib(after.RSS), mib(after.Peak)), "", "")

	all := e.timeList(t, controlplane.ListOptions{}, "scale", n)
	rep.row(fmt.Sprintf("scctl connection list, all %d (%d pages)", n, all.pages), all.took.Round(time.Millisecond).String(), "", "")
	inFirst := (n + nsCount - 1) / nsCount // connection i renders into namespace i%nsCount
	one := e.timeList(t, controlplane.ListOptions{Namespace: bulk.nss[0]}, "scale", inFirst)
	rep.row(fmt.Sprintf("scctl connection list --kube-namespace, %d of %d (%d pages)", inFirst, n, one.pages), one.took.Round(time.Millisecond).String(), "", "")
	e.benchUpgradeRerender(t, bulk).rows(rep, n)
	e.benchNewWorkFirst(t, "nwfscale", 20).rows(rep, n)
	bulk.remove()
}

type listTiming struct {
	took  time.Duration
	pages int
}

// timeList walks every page of a list the way scctl does (controlplane's
// List, the agent's default page size) and checks it saw want of this
// run's connections named prefix*.
func (e *env) timeList(t *testing.T, o controlplane.ListOptions, prefix string, want int) listTiming {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := e.cp.List(ctx, o)
	took := time.Since(start)
	require.NoError(t, err)
	assert.Empty(t, l.Errors, "unreadable records")
	ours := 0
	for _, v := range l.Items {
		if strings.HasPrefix(v.Spec.Name, prefix) && strings.HasSuffix(v.Spec.Name, runID) {
			ours++
		}
	}
	assert.Equal(t, want, ours, "connections of this run listed")
	return listTiming{took: took, pages: l.Pages}
}
