// Command release builds a release of sc-extension into
// _output/release/<version>/ (`make release VERSION=vX.Y.Z`, docs/releasing.md):
//
//   - sc-extension-X.Y.Z.tgz: `helm package` of chart/ with version X.Y.Z and
//     appVersion vX.Y.Z (the tracked Chart.yaml is not edited), its entries
//     re-dated to the commit's time so the archive is byte-identical per commit;
//   - <image>-image.tar for agent, job and scctl, packed by imagepack exactly
//     as the test bed's images, stamped with the version and the commit;
//   - <binary>-linux-amd64: the binaries those images hold;
//   - images.txt: repository:version@sha256:... of each image;
//   - SHA256SUMS of every other file, in `sha256sum -c` format.
//
// It refuses a version that is not vMAJOR.MINOR.PATCH[-PRERELEASE] and a
// working tree with uncommitted changes (unless -allow-dirty): a release must
// be rebuildable from its commit.
//
//	go run ./internal/cmd/release -version v0.2.0 [-out _output/release] [-allow-dirty]
package main
