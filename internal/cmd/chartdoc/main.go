package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chartdoc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "write nothing; exit 1 when README.md differs from what would be generated")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chartdoc [-check] CHART_DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	dir := fs.Arg(0)
	want, err := Generate(dir)
	if err != nil {
		fmt.Fprintf(stderr, "chartdoc: %v\n", err)
		return 1
	}
	path := filepath.Join(dir, readmeFile)
	if !*check {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			fmt.Fprintf(stderr, "chartdoc: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "chartdoc: wrote %s\n", path)
		return 0
	}
	got, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		fmt.Fprintf(stderr, "chartdoc: %v\n", err)
		return 1
	}
	if bytes.Equal(got, want) {
		return 0
	}
	fmt.Fprintf(stderr, "chartdoc: %s is stale: run `go run ./internal/cmd/chartdoc %s` and commit it\n%s", path, dir, firstDifference(got, want))
	return 1
}

// firstDifference names the first line where the committed file and the
// generated one part, which is usually enough to see which value changed.
func firstDifference(got, want []byte) string {
	g := strings.Split(string(got), "\n")
	w := strings.Split(string(want), "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("first difference at line %d:\n  committed: %s\n  generated: %s\n", i+1, gl, wl)
		}
	}
	return ""
}
