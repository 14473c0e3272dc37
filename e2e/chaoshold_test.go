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
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// secretHold is a validating admission webhook served by the test itself:
// it admits the first few Secret creates in one namespace whose names
// start with a prefix, then holds every further one until released. A
// client held there is provably in the middle of its work, whatever the
// machine's speed: the chaos tests kill sc-job at that point instead of
// racing its log.
//
// The API server reaches the webhook at the node's address (as pods reach
// the test's NATS server); the holding is bounded below the webhook's
// timeout so a forgotten release cannot fail a write.
type secretHold struct {
	ns, prefix string
	admitFirst int

	mu       sync.Mutex
	admitted int
	held     int
	changed  chan struct{} // closed and replaced on every change
	release  chan struct{}
	released bool
	probed   bool
}

const (
	holdWebhook = "e2e-secret-hold.sc-extension.io"
	// holdMax stays below holdTimeout: a write is never failed by the hold.
	holdTimeout = 30
	holdMax     = 25 * time.Second
	holdProbe   = "e2e-hold-probe-"
)

// holdSecrets installs the webhook for ns and waits until the API server
// calls it (a probe Secret is seen), so no later create slips past it.
func (e *env) holdSecrets(t *testing.T, ns, prefix string, admitFirst int) *secretHold {
	t.Helper()
	h := &secretHold{ns: ns, prefix: prefix, admitFirst: admitFirst, changed: make(chan struct{}), release: make(chan struct{})}
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
	name := "e2e-hold-" + ns
	url := fmt.Sprintf("https://%s/hold", ln.Addr().String())
	none, fail, timeout := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Fail, int32(holdTimeout)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    holdWebhook,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
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
	// probe until the webhook has seen a create.
	n := 0
	eventually(t, time.Minute, "the API server calls the hold webhook", func(ctx context.Context) (bool, error) {
		n++
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s%d", holdProbe, n), Namespace: ns}}
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return false, err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.probed, nil
	})
	return h
}

// ServeHTTP answers one AdmissionReview: probes and other Secrets at once,
// the first admitFirst matching creates at once, the rest when released.
func (h *secretHold) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	name := review.Request.Name
	h.mu.Lock()
	switch {
	case strings.HasPrefix(name, holdProbe):
		h.probed = true
	case review.Request.Namespace != h.ns || !strings.HasPrefix(name, h.prefix) || h.released:
	case h.admitted < h.admitFirst:
		h.admitted++
	default:
		h.held++
		h.signal()
		release := h.release
		h.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(holdMax):
		}
		h.mu.Lock()
		h.held--
	}
	h.signal()
	h.mu.Unlock()
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

// signal wakes the waiters; the caller holds mu.
func (h *secretHold) signal() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// awaitHeld waits until the first admitFirst creates were admitted and at
// least one more is held: the writer is mid-way.
func (h *secretHold) awaitHeld(t *testing.T, timeout time.Duration) (admitted, held int) {
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

// open admits everything from now on, the held creates included.
func (h *secretHold) open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.released {
		h.released = true
		close(h.release)
	}
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
