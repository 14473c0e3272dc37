// Command chartdoc writes a Helm chart's README.md from the `# --` comments
// above every key of its values.yaml (the helm-docs convention) and the
// chart's README.md.gotmpl, so the documented values cannot drift from the
// real defaults. With -check it writes nothing and fails when README.md is
// stale, for `make verify`.
//
//	go run ./internal/cmd/chartdoc chart
//	go run ./internal/cmd/chartdoc -check chart
package main
