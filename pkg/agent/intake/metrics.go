package intake

import (
	"time"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
)

// requestMetrics is what the dispatcher tells /metrics: how many requests
// it holds (sc_agent_requests_held) and, for each one it finishes, how long
// it held it (sc_agent_request_duration_seconds). The time runs on this
// agent's clock from the delivery it took, not from the stream's timestamp,
// so that a request that waited in the stream while no agent ran is not
// counted as slow, and clocks of other hosts never enter it. A nil
// *health.Metrics observes nothing.
type requestMetrics struct{ m *health.Metrics }

// taken: a delivery became a held request.
func (r requestMetrics) taken() { r.m.AddRequestsHeld(1) }

// finished: h was acked, or terminated.
func (r requestMetrics) finished(h *held, terminated bool) {
	r.m.AddRequestsHeld(-1)
	outcome := health.RequestAcked
	if terminated {
		outcome = health.RequestTerminated
	}
	r.m.RequestFinished(outcome, time.Since(h.taken))
}

// handedBack: n held requests were NAKed at shutdown. They are not
// finished (another delivery will finish them), so no duration is
// observed.
func (r requestMetrics) handedBack(n int) { r.m.AddRequestsHeld(-n) }
