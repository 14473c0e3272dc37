package imagepack

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Source is the org.opencontainers.image.source label of every image.
const Source = "https://github.com/sc-extension/sc-extension"

// versionVar is the variable -X stamps; pkg/version documents it.
const versionVar = "github.com/sc-extension/sc-extension/pkg/version.Version"

// devVersion is pkg/version's default and the tag every test and the chart's
// local values use, so it is always among an image's tags.
const devVersion = "dev"

// Stamp is the release a build is stamped with: in the binaries (-X), the
// image labels and an extra image tag.
type Stamp struct {
	Version  string // release; "dev" when empty
	Revision string // git commit; "unknown" when empty
	// LDFlags is appended to "-s -w"; when empty, a -X of Version into
	// pkg/version. The Makefile exports LDFLAGS, which is honoured verbatim.
	LDFlags string
}

// StampFromEnv reads the Makefile's exported VERSION and LDFLAGS through
// getenv, and the commit of the checkout at root.
func StampFromEnv(ctx context.Context, root string, getenv func(string) string) Stamp {
	s := Stamp{Version: getenv("VERSION"), LDFlags: getenv("LDFLAGS")}
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "HEAD")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		s.Revision = strings.TrimSpace(string(out))
	}
	return s
}

func (s Stamp) version() string {
	if s.Version == "" {
		return devVersion
	}
	return s.Version
}

// GoLDFlags is the -ldflags value of every binary, the same as the
// Dockerfiles' for the same VERSION: stripped, version stamped.
func (s Stamp) GoLDFlags() string {
	extra := s.LDFlags
	if extra == "" {
		extra = "-X " + versionVar + "=" + s.version()
	}
	return "-s -w " + extra
}

// Labels are the OCI annotations of the image of binary; the Dockerfiles'
// LABEL line sets the same keys.
func (s Stamp) Labels(binary string) map[string]string {
	rev := s.Revision
	if rev == "" {
		rev = "unknown"
	}
	return map[string]string{
		"org.opencontainers.image.title":    binary,
		"org.opencontainers.image.version":  s.version(),
		"org.opencontainers.image.revision": rev,
		"org.opencontainers.image.source":   Source,
	}
}

// Tags returns ref (whose tag the chart's local values and the tests use)
// and, unless the version is "dev", the same repository tagged with it.
func (s Stamp) Tags(ref string) ([]name.Tag, error) {
	t, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	tags := []name.Tag{t}
	if v := s.version(); v != t.TagStr() {
		vt, err := name.NewTag(t.Repository.Name()+":"+v, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("VERSION %q is not a valid image tag: %w", v, err)
		}
		tags = append(tags, vt)
	}
	return tags, nil
}
