package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Exit codes, as documented in docs/scctl.md.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitUnreachable = 3
)

// ErrUsage is matched by every command-line mistake: exit code 2.
var ErrUsage = errors.New("usage error")

// ErrOperationFailed marks an operation the agent carried out and reported
// as failed (phase Failed, validate reporting a failed check).
var ErrOperationFailed = errors.New("operation failed")

// sentenceError prints as its message alone yet matches a sentinel, so the
// user reads one sentence, not "usage error: ...".
type sentenceError struct {
	msg  string
	kind error
}

func (e *sentenceError) Error() string { return e.msg }
func (e *sentenceError) Unwrap() error { return e.kind }

func usagef(format string, args ...any) error {
	return &sentenceError{msg: fmt.Sprintf(format, args...), kind: ErrUsage}
}

func failedf(format string, args ...any) error {
	return &sentenceError{msg: fmt.Sprintf(format, args...), kind: ErrOperationFailed}
}

// exitCode classifies an error. Unknown errors are operational failures:
// exit 1, never 2, so scripts can tell "fix your command line" apart.
func (a *App) exitCode(err error) int {
	var reply *protocol.ReplyError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrUsage), errors.Is(err, connection.ErrInvalid), errors.Is(err, ErrIncompatibleAgent):
		return ExitUsage
	case a.unreachable(err), a.serverUnreachable(err):
		return ExitUnreachable
	case errors.As(err, &reply) && reply.Code == protocol.CodeInvalid:
		return ExitUsage
	default:
		return ExitFailed
	}
}

// message turns an error into the sentence scctl prints.
func (a *App) message(err error, g *globals) string {
	var reply *protocol.ReplyError
	switch {
	case a.serverUnreachable(err):
		// nats.go says only "no servers available": the wrapped chain
		// would repeat the URL and add nothing.
		return fmt.Sprintf("the control plane at %s is not reachable (no NATS server answered); check --server "+
			"(or SCCTL_SERVER) and that the server runs", redactURL(g.server))
	case a.unreachable(err):
		return fmt.Sprintf("the agent of cluster %q is not reachable (%v); check that sc-extension is installed there "+
			"(kubectl -n sc-system get pods) and connected to this server", g.cluster, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out (raise --timeout, or use --no-wait and `scctl connection wait` later): %v", err)
	case errors.As(err, &reply):
		return reply.Message
	case errors.Is(err, natsbus.ErrTLSFiles):
		return fmt.Sprintf("%v; check --tls-ca, --tls-cert and --tls-key (or SCCTL_TLS_CA, SCCTL_TLS_CERT, SCCTL_TLS_KEY)", err)
	}
	if hint := tlsHint(err); hint != "" {
		return fmt.Sprintf("%v; %s", err, hint)
	}
	var verr connection.ValidationError
	if errors.As(err, &verr) {
		lines := make([]string, len(verr))
		for i, fe := range verr {
			lines[i] = flagFor(fe.Field) + ": " + fe.Reason
		}
		return strings.Join(lines, "\n")
	}
	return err.Error()
}

// tlsHint names the flag that fixes a failed TLS handshake.
func tlsHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return "pass the CA bundle that signed the server's certificate with --tls-ca (or SCCTL_TLS_CA)"
	case errors.As(err, &hostname):
		return "the server's certificate does not name the host in --server; use a name or address it was issued for"
	case strings.Contains(err.Error(), "remote error: tls:"),
		strings.Contains(err.Error(), "connection closed by remote after TLS handshake"):
		// crypto/tls exposes the server's alert only as text; TLS 1.3 may
		// also report a refused client certificate as a closed connection.
		return "the server refused the TLS session; if it verifies clients, pass a certificate it trusts with --tls-cert and --tls-key"
	}
	return ""
}

// flagFor maps a Spec field path from connection.Validate to the flag that
// sets it, so a validation failure names what the user typed.
func flagFor(field string) string {
	root, rest, _ := strings.Cut(field, ".")
	if i := strings.IndexByte(root, '['); i >= 0 {
		root = root[:i]
	}
	switch root {
	case "name":
		return "--connection"
	case "scope":
		return "--kube-namespace"
	case "targetService":
		if rest == "type" {
			return "<target>"
		}
		return "--target-id"
	case "authInfo":
		switch rest {
		case "clientId":
			return "client-id (--workload-identity/--service-principal)"
		case "tenantId":
			return "tenant-id (--workload-identity/--service-principal)"
		case "authType":
			return "auth type (--secret/--workload-identity/--service-principal/--keyvault-csi)"
		}
		return field
	case "configurations":
		return "--config"
	case "credentials":
		return "--secret " + rest
	case "customizedKeys":
		return "--customized-keys " + rest
	case "clientType":
		return "--client-type"
	case "binding":
		return bindingFlagFor(rest)
	}
	return field
}

// bindingFlagFor names the flag behind a binding field: binding.mode is
// --binding-mode, binding.workloads[1].name the second --workload's name.
func bindingFlagFor(rest string) string {
	if rest == "mode" {
		return "--binding-mode"
	}
	i, sub, ok := indexed(rest, "workloads")
	if !ok {
		return "--workload"
	}
	flag := fmt.Sprintf("--workload #%d", i+1)
	if j, _, ok := indexed(sub, "containers"); ok {
		return fmt.Sprintf("%s container #%d", flag, j+1)
	}
	if sub != "" {
		return flag + " " + sub
	}
	return flag
}

// indexed splits "name[i].rest" into i and rest.
func indexed(path, name string) (int, string, bool) {
	var i int
	head, rest, _ := strings.Cut(path, ".")
	if _, err := fmt.Sscanf(head, name+"[%d]", &i); err != nil {
		return 0, "", false
	}
	return i, rest, true
}
