package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// workItem is one connection sc-job still has to render.
type workItem struct {
	id         string
	generation int64
	// requestID is the last request applied: a re-sent request for an
	// unchanged spec (a retry after fixing what made it fail) is new work
	// even though the generation stays.
	requestID string
	record    *corev1.ConfigMap
}

// work is everything due, with a digest over ids, generations and last
// request ids. The phase is left out on purpose: sc-job moving a record from
// Pending to Running is not new work.
type work struct {
	items  []workItem
	digest string
	// next is the earliest time a connection that is not due yet becomes
	// due (a backoff or a parking running out); zero if none waits.
	next time.Time
}

// wait is how long until next, or 0 when nothing waits.
func (w work) wait(now time.Time) time.Duration {
	if w.next.IsZero() {
		return 0
	}
	return max(w.next.Sub(now), 0)
}

func newWork(items []workItem) work {
	sort.Slice(items, func(i, j int) bool { return items[i].id < items[j].id })
	h := sha256.New()
	for _, it := range items {
		fmt.Fprintf(h, "%s@%d/%s\n", it.id, it.generation, it.requestID)
	}
	return work{items: items, digest: hex.EncodeToString(h.Sum(nil))[:32]}
}

// ids lists at most max ids for an Event message.
func (w work) ids(max int) string {
	var names []string
	for i, it := range w.items {
		if i == max {
			names = append(names, fmt.Sprintf("and %d more", len(w.items)-max))
			break
		}
		names = append(names, it.id)
	}
	return strings.Join(names, ", ")
}
