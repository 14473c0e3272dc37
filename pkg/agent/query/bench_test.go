package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// benchRecords is the size of the scale goal (issue 9).
const benchRecords = 10_000

// typicalConns are n typical connections in 50 namespaces.
func typicalConns(n int) []connection.Connection {
	out := make([]connection.Connection, n)
	for i := range out {
		spec, status := typical(fmt.Sprintf("conn%05d", i))
		spec.Scope = fmt.Sprintf("team-%02d", i%50)
		out[i] = connection.Connection{Spec: spec, Generation: 1, Status: status}
	}
	return out
}

// BenchmarkListPaged is the agent's side of a full list of 10,000 cached
// records: every page at the default size, built and encoded as the reply
// the agent publishes. Compare with BenchmarkListBaseline.
func BenchmarkListPaged(b *testing.B) {
	snap, err := query.SnapshotOf(typicalConns(benchRecords))
	require.NoError(b, err)
	b.ReportAllocs()
	pages := 0
	for b.Loop() {
		token := ""
		pages = 0
		for {
			raw, next, err := snap.Page("", token, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := protocol.EncodeResult(raw); err != nil {
				b.Fatal(err)
			}
			pages++
			if next == "" {
				break
			}
			token = next
		}
	}
	b.ReportMetric(float64(pages), "pages/op")
}

// BenchmarkListBaseline encodes the same 10,000 views with json.Marshal,
// as one array: the encoding v0.1.0 did per list, without its API LIST and
// decoding of every ConfigMap.
func BenchmarkListBaseline(b *testing.B) {
	conns := typicalConns(benchRecords)
	views := make([]protocol.ConnectionView, len(conns))
	for i, c := range conns {
		views[i] = query.View(c)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(views); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListOverNATS is what `scctl connection list` waits for: every
// page of 10,000 records from a synced Cache, over an embedded NATS
// server, decoded by scctl's walk; all of them, and one namespace's 200.
func BenchmarkListOverNATS(b *testing.B) {
	conns := typicalConns(benchRecords)
	cms := make([]*corev1.ConfigMap, len(conns))
	for i, c := range conns {
		cms[i] = records.ConfigMap(b, c)
	}
	c, _ := cached(b, objects(cms...)...)
	cp, _ := serveCache(b, c)
	for _, bc := range []struct {
		name string
		o    controlplane.ListOptions
		want int
	}{
		{"all", controlplane.ListOptions{}, benchRecords},
		{"namespace", controlplane.ListOptions{Namespace: "team-07"}, benchRecords / 50},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var l controlplane.Listing
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				var err error
				l, err = controlplane.List(ctx, cp, bc.o)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
			if len(l.Items) != bc.want {
				b.Fatalf("listed %d, want %d", len(l.Items), bc.want)
			}
			b.ReportMetric(float64(l.Pages), "pages/op")
		})
	}
}
