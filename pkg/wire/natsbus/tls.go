package natsbus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// ErrTLSFiles: a CA bundle, client certificate or key could not be used.
// The message names the file and the reason, never its content.
var ErrTLSFiles = errors.New("NATS TLS files")

// TLSFiles names the PEM files of a TLS connection to NATS. All empty
// leaves TLS to the URL: a tls:// URL then verifies the server against the
// system roots.
type TLSFiles struct {
	// CAFile is a bundle of CA certificates that sign the server's
	// certificate; empty: the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key, for a
	// server that verifies clients. Both or neither.
	CertFile string
	KeyFile  string
}

// Enabled says whether any file is set, which makes TLS required.
func (f TLSFiles) Enabled() bool { return f.CAFile != "" || f.CertFile != "" || f.KeyFile != "" }

// Validate reads every file once, so a missing or broken one is reported
// at start, by name, instead of as a failed handshake later.
func (f TLSFiles) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return fmt.Errorf("%w: a client certificate needs both a certificate file and a key file (certificate %q, key %q)",
			ErrTLSFiles, f.CertFile, f.KeyFile)
	}
	if f.CAFile != "" {
		if _, err := f.rootCAs(); err != nil {
			return err
		}
	}
	if f.CertFile != "" {
		if _, err := f.clientCert(); err != nil {
			return err
		}
	}
	return nil
}

// options turns the files into nats.go options. The files are read again
// on every (re)connect, so a certificate rotated on disk (a renewed
// cert-manager Secret) is picked up without a restart.
func (f TLSFiles) options() ([]nats.Option, error) {
	if !f.Enabled() {
		return nil, nil
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var certCB nats.TLSCertHandler
	var rootCB nats.RootCAsHandler
	if f.CertFile != "" {
		certCB = f.clientCert
	}
	if f.CAFile != "" {
		rootCB = f.rootCAs
	}
	opts := []nats.Option{nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12})}
	if certCB != nil || rootCB != nil {
		opts = append(opts, nats.ClientTLSConfig(certCB, rootCB))
	}
	return opts, nil
}

func (f TLSFiles) rootCAs() (*x509.CertPool, error) {
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %w", ErrTLSFiles, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s: no PEM certificate in it", ErrTLSFiles, f.CAFile)
	}
	return pool, nil
}

// clientCert loads the key pair. tls.X509KeyPair's errors describe what
// is wrong (no PEM block, key does not match) without echoing the key.
func (f TLSFiles) clientCert() (tls.Certificate, error) {
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: client certificate file: %w", ErrTLSFiles, err)
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: client key file: %w", ErrTLSFiles, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: client certificate %s with key %s: %w", ErrTLSFiles, f.CertFile, f.KeyFile, err)
	}
	return cert, nil
}

// ClientOptions are the authentication and TLS options every sc-extension
// client (agent and scctl) shares.
func ClientOptions(user, password, credsFile string, files TLSFiles) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case credsFile != "":
		if _, err := os.Stat(credsFile); err != nil {
			return nil, fmt.Errorf("NATS credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(credsFile))
	case user != "":
		opts = append(opts, nats.UserInfo(user, password))
	}
	tlsOpts, err := files.options()
	if err != nil {
		return nil, err
	}
	return append(opts, tlsOpts...), nil
}
