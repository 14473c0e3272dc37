package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrBadVersion is returned for a version a release cannot carry.
var ErrBadVersion = errors.New("release version must be vMAJOR.MINOR.PATCH[-PRERELEASE] (semver with a leading v)")

// semverRE is semver.org's grammar without build metadata, after a "v": a
// "+" cannot appear in an image tag, and build metadata would not order
// releases anyway.
var semverRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)` +
	`(-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?$`)

// maxTagLen is the longest image tag a registry accepts.
const maxTagLen = 128

// version is a validated release version.
type version struct {
	Tag   string // vX.Y.Z: binaries, image tags, the chart's appVersion
	Chart string // X.Y.Z: the chart's version (Helm's convention, no "v")
}

func parseVersion(s string) (version, error) {
	if strings.Contains(s, "+") {
		return version{}, fmt.Errorf("%q: build metadata (+...) cannot be part of an image tag: %w", s, ErrBadVersion)
	}
	if len(s) > maxTagLen || !semverRE.MatchString(s) {
		return version{}, fmt.Errorf("%q: %w", s, ErrBadVersion)
	}
	return version{Tag: s, Chart: strings.TrimPrefix(s, "v")}, nil
}
