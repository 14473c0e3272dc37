package cli

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestProbeRetriesUntilReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "nats: not connected", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	r := runApp(t, nil, nil, "", false, "probe", srv.URL+"/readyz", "--interval", "5ms", "--timeout", "10s")
	assert.Equal(t, ExitOK, r.code, r.stderr)
	assert.EqualValues(t, 3, calls.Load())
	assert.Equal(t, srv.URL+"/readyz: HTTP 200 ok\n", r.stdout)
}

func TestProbeReportsLastAnswerOnTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "informers not synced", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	r := runApp(t, nil, nil, "", false, "probe", srv.URL, "--interval", "5ms", "--timeout", "50ms")
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stderr, "did not answer 2xx within 50ms: HTTP 503 informers not synced")
}
