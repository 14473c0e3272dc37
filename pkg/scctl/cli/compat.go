package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	utilversion "k8s.io/apimachinery/pkg/util/version"

	"github.com/sc-extension/sc-extension/pkg/version"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ErrIncompatibleAgent: the cluster's agent does not decode the envelope
// version this scctl writes, so scctl sends nothing. Exit code 2, like a
// usage error: retrying cannot help, another scctl release can.
var ErrIncompatibleAgent = errors.New("agent does not speak this scctl's protocol")

// agentCheckTimeout bounds the heartbeat read before a connection command:
// it is one stream get, and a slow answer must not hold up the command,
// which then runs without the check.
const agentCheckTimeout = 3 * time.Second

// devVersion is pkg/version.Version of a build without the Makefile's
// LDFLAGS: it names no release, so it is never compared.
const devVersion = "dev"

// talksToAgent reports whether cmd is a `scctl connection ...` command,
// the ones that check the agent's heartbeat before they talk to it.
func talksToAgent(cmd *cobra.Command) bool {
	for c := cmd; c != nil && c.HasParent(); c = c.Parent() {
		if c.Name() == "connection" && !c.Parent().HasParent() {
			return true
		}
	}
	return false
}

// checkAgent reads the agent's last heartbeat once, before a connection
// command sends anything. An agent that does not decode protocol.APIVersion,
// or does not advertise one of features (what the command's request needs),
// is an error (ErrIncompatibleAgent); a release other than scctl's is one
// warning line on stderr. Without a readable heartbeat there is nothing to
// compare and the command goes ahead: whether the agent answers is the
// command's own business (exit 3 if it does not).
func (a *App) checkAgent(ctx context.Context, cp ControlPlane, cluster string, features []string) error {
	ctx, cancel := context.WithTimeout(ctx, agentCheckTimeout)
	defer cancel()
	hb, err := cp.LatestHeartbeat(ctx)
	if err != nil {
		return nil //nolint:nilerr // no heartbeat: nothing to judge, see above
	}
	if err := incompatibility(cluster, hb); err != nil {
		return err
	}
	for _, feature := range features {
		if !hb.Supports(feature) {
			return missingFeature(cluster, hb, feature)
		}
	}
	if w := releaseSkew(cluster, hb.AgentVersion, version.Version); w != "" {
		fmt.Fprintf(a.Stderr, "scctl: warning: %s\n", w)
	}
	return nil
}

// incompatibility is ErrIncompatibleAgent, naming both sides' releases and
// protocols, when the agent does not decode what this scctl writes.
func incompatibility(cluster string, hb protocol.Heartbeat) error {
	if hb.Speaks(protocol.APIVersion) {
		return nil
	}
	speaks := strings.Join(hb.Versions(), ", ")
	return &sentenceError{kind: ErrIncompatibleAgent, msg: fmt.Sprintf(
		"the agent of cluster %q (release %s) speaks %s, not %s, which this scctl (release %s) speaks; nothing was sent: "+
			"use an scctl that speaks %s, such as release %s",
		cluster, orUnknown(hb.AgentVersion), speaks, protocol.APIVersion, version.Version, speaks, orUnknown(hb.AgentVersion))}
}

// featureUse says, per feature, what an agent without it cannot do and the
// flags that ask for it.
var featureUse = map[string]struct{ lacks, flags string }{
	protocol.FeatureBinding: {
		lacks: "does not bind workloads (its heartbeat does not advertise the binding feature; it would ignore the binding)",
		flags: "--workload, --binding-mode, --no-restart and --unbind",
	},
}

// missingFeature is ErrIncompatibleAgent for an agent that speaks scctl's
// protocol but lacks what the request needs: an additive field such as
// spec.binding would reach it and be dropped without a word, so scctl
// sends nothing instead.
func missingFeature(cluster string, hb protocol.Heartbeat, feature string) error {
	use, ok := featureUse[feature]
	if !ok {
		use.lacks, use.flags = fmt.Sprintf("does not advertise the %s feature", feature), "the flags that need it"
	}
	return &sentenceError{kind: ErrIncompatibleAgent, msg: fmt.Sprintf(
		"the agent of cluster %q (release %s) %s; nothing was sent: upgrade sc-extension on the cluster (helm upgrade), "+
			"or leave out %s",
		cluster, orUnknown(hb.AgentVersion), use.lacks, use.flags)}
}

// releaseSkew is the warning for an agent of another release than scctl's,
// or "" when there is none to give: same release, or either side unknown
// ("" from an agent older than the field) or a development build.
func releaseSkew(cluster, agent, client string) string {
	if agent == client || agent == "" || agent == unknownVersion || agent == devVersion || client == devVersion || client == "" {
		return ""
	}
	order, ordered := compareReleases(agent, client)
	switch {
	case !ordered:
		return fmt.Sprintf("the agent of cluster %q runs release %s, this scctl %s; neither is known to be newer", cluster, agent, client)
	case order < 0:
		return fmt.Sprintf("the agent of cluster %q runs release %s, older than this scctl (%s): what %s added is not there "+
			"until the agent is upgraded (helm upgrade)", cluster, agent, client, client)
	case order > 0:
		return fmt.Sprintf("the agent of cluster %q runs release %s, newer than this scctl (%s): upgrade scctl to use what %s added",
			cluster, agent, client, agent)
	}
	return "" // the same release spelled differently (v0.1.0 and 0.1.0)
}

// describeRE splits what the Makefile stamps, `git describe --tags --always
// --dirty`: a tag, then -N-gHASH when N commits past it, then -dirty. The
// tag must be semver (vX.Y.Z[-PRE]); a bare commit hash (no tag in reach)
// is not.
var describeRE = regexp.MustCompile(`^(.+?)(?:-(\d+)-g[0-9a-f]+)?(?:-dirty)?$`)

// parseRelease is the tag of a stamped version and the commits past it.
func parseRelease(s string) (tag *utilversion.Version, ahead int, ok bool) {
	m := describeRE.FindStringSubmatch(s)
	if m == nil {
		return nil, 0, false
	}
	tag, err := utilversion.ParseSemantic(m[1])
	if err != nil {
		return nil, 0, false
	}
	if m[2] != "" {
		if ahead, err = strconv.Atoi(m[2]); err != nil {
			return nil, 0, false
		}
	}
	return tag, ahead, true
}

// compareReleases orders two stamped versions: semver precedence of the
// tags, then commits past the tag. ordered is false when either does not
// parse, or both are the same distance past the same tag yet differ (other
// commits, or one dirty): neither is known to be newer.
func compareReleases(a, b string) (order int, ordered bool) {
	ta, aheadA, okA := parseRelease(a)
	tb, aheadB, okB := parseRelease(b)
	if !okA || !okB {
		return 0, false
	}
	switch {
	case ta.LessThan(tb):
		return -1, true
	case ta.GreaterThan(tb):
		return 1, true
	}
	if c := cmp.Compare(aheadA, aheadB); c != 0 {
		return c, true
	}
	return 0, strings.TrimPrefix(a, "v") == strings.TrimPrefix(b, "v")
}

func orUnknown(v string) string {
	if v == "" {
		return unknownVersion
	}
	return v
}
