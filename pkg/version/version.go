// Package version holds the release version stamped into every binary at
// build time (-ldflags "-X .../pkg/version.Version=v1.2.3"), so the heartbeat,
// `scctl version`, the images and the chart all name the same release.
package version

// Version is the release this binary was built from; "dev" when built
// without the Makefile's LDFLAGS.
var Version = "dev"
