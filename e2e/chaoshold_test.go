//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// createHold is a validating admission webhook served by the test itself:
// it admits an allowance of creates of one resource in one namespace whose
// names start with a prefix, then holds every further one until the
// allowance grows or the hold opens. A client held there is provably in
// the middle of its work, whatever the machine's speed: the chaos tests
// kill sc-job or the agent at that point instead of racing their logs.
//
// The API server reaches the webhook at the node's address (as pods reach
// the test's NATS server). A held create is let through after holdMax,
// below the webhook's timeout, and the failure policy is Ignore: neither a
// forgotten release nor a test that died can fail a write for long.
type createHold struct {
	ns, prefix string

	mu        sync.Mutex
	allowance int
	admitted  int
	held      int
	expired   int           // creates let through by holdMax, not by the test
	changed   chan struct{} // closed and replaced on every change
	released  bool
	probed    bool
}

// holds numbers the webhook configurations: a test may hold twice.
var holds atomic.Int64

const (
	holdWebhook = "e2e-create-hold.sc-extension.io"
	// holdMax stays below holdTimeout: a write is never failed by the hold.
	holdTimeout = 30
	holdMax     = 25 * time.Second
	holdProbe   = "e2e-hold-probe-"
)

// holdCreates installs the webhook for creates of resource ("secrets" or
// "configmaps") in ns, admitting allowance of those named prefix*, and
// waits until the API server calls it (a probe object is seen), so no
// later create slips past it.
func (e *env) holdCreates(t *testing.T, resource, ns, prefix string, allowance int) *createHold {
	t.Helper()
	h := &createHold{ns: ns, prefix: prefix, allowance: allowance, changed: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr, err := nodeAddress(ctx, e.cluster)
	require.NoError(t, err)
	ip := net.ParseIP(addr)
	require.NotNil(t, ip, "node address %q", addr)
	cert, caPEM, err := selfSignedFor(ip)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()

	cs := e.cluster.Clientset
	name := fmt.Sprintf("e2e-hold-%s-%s-%d", resource, ns, holds.Add(1))
	url := fmt.Sprintf("https://%s/hold", ln.Addr().String())
	none, ignore, timeout := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Ignore, int32(holdTimeout)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         holdWebhook,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{resource}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			SideEffects:             &none,
			FailurePolicy:           &ignore,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		h.open()
		err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete webhook %s: %v", name, err)
		}
		_ = srv.Close()
	})

	// The API server learns of the configuration through its own informer:
	// probe until the webhook has seen a create. The probes go at cleanup.
	n := 0
	eventually(t, time.Minute, "the API server calls the hold webhook", func(ctx context.Context) (bool, error) {
		n++
		meta := metav1.ObjectMeta{Name: fmt.Sprintf("%s%d", holdProbe, n), Namespace: ns}
		var err error
		if resource == "configmaps" {
			_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta}, metav1.CreateOptions{})
		} else {
			_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: meta}, metav1.CreateOptions{})
		}
		if err != nil {
			return false, err
		}
		t.Cleanup(func() {
			_ = cs.CoreV1().ConfigMaps(ns).Delete(context.Background(), meta.Name, metav1.DeleteOptions{})
			_ = cs.CoreV1().Secrets(ns).Delete(context.Background(), meta.Name, metav1.DeleteOptions{})
		})
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.probed, nil
	})
	return h
}

// ServeHTTP answers one AdmissionReview: probes and other objects at once,
// matching creates within the allowance at once, the rest when the
// allowance grows or the hold opens (or after holdMax).
func (h *createHold) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	name := review.Request.Name
	limit := time.NewTimer(holdMax)
	defer limit.Stop()
	h.mu.Lock()
	switch {
	case strings.HasPrefix(name, holdProbe):
		h.probed = true
	case review.Request.Namespace != h.ns || !strings.HasPrefix(name, h.prefix):
	default:
		h.held++
		h.signal()
		gone := false
		for waiting := true; waiting && !h.released && h.admitted >= h.allowance; {
			changed := h.changed
			h.mu.Unlock()
			select {
			case <-changed:
			case <-r.Context().Done():
				// The writer is gone (killed): its create is not stored and
				// must not use up the allowance meant for the next one.
				waiting, gone = false, true
			case <-limit.C:
				waiting = false
			}
			h.mu.Lock()
			if !waiting && !gone {
				h.expired++
			}
		}
		h.held--
		if !gone {
			h.admitted++
		}
	}
	h.signal()
	h.mu.Unlock()
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

// signal wakes the waiters; the caller holds mu.
func (h *createHold) signal() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// awaitHeld waits until the allowance is used up and at least one more
// create is held: the writer is mid-way and cannot get further.
func (h *createHold) awaitHeld(t *testing.T, timeout time.Duration) (admitted, held int) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		admitted, held, changed := h.admitted, h.held, h.changed
		h.mu.Unlock()
		if held > 0 {
			return admitted, held
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no create held by the webhook within %s (%d admitted)", timeout, admitted)
		}
	}
}

// allowMore waits until no create is held (a killed writer's held call
// ends when the API server drops it, or at holdMax) and then lets n more
// through: all n are the next writer's.
func (h *createHold) allowMore(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(2 * holdMax)
	defer deadline.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.held > 0 {
		changed := h.changed
		h.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			h.mu.Lock()
			t.Fatalf("%d creates still held %s after their writer was killed", h.held, 2*holdMax)
		}
		h.mu.Lock()
	}
	h.allowance = h.admitted + n
	h.signal()
}

// open admits everything from now on, the held creates included.
// timedOut counts the creates let through because they were held holdMax:
// a test that meant to hold them until it acted learns that it was late.
func (h *createHold) timedOut() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expired
}

func (h *createHold) open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = true
	h.signal()
}

// selfSignedFor makes a serving certificate for ip that is its own CA.
func selfSignedFor(ip net.IP) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "e2e secret hold"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{ip},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return tls.Certificate{}, nil, errors.Join(errors.New("serving certificate"), err)
	}
	return cert, certPEM, nil
}
