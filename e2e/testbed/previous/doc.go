// Package previous builds an earlier release from git, the way the working
// tree's own images are packed, for the upgrade and rollback tests.
//
// Build extracts a commit with `git archive` (fetching it first when a
// shallow clone lacks it), runs that commit's own e2e/cmd/imagepack with
// VERSION set to the release, and keeps the result in a cache keyed by
// commit and version, so a suite pays for the build once per commit. The
// image tarballs it returns carry only the release's tag: the commit's
// imagepack also tags every image :dev, and importing that would replace
// the working tree's images in the cluster's containerd.
package previous
