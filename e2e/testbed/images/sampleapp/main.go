// Command sampleapp is the workload of the seed's example: a pod that consumes
// a Service Connector Secret through envFrom. It prints every AZURE_* variable
// it received, with credential values masked, so a demo or a test can show
// what a workload sees without ever printing a credential.
//
// With --stay it then keeps running until it is stopped, as the container
// of a Deployment bound to connections does; it also prints the bindings it
// finds under $SERVICE_BINDING_ROOT (servicebinding.io layout: one
// directory per binding with its type, provider and keys).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
)

func main() {
	stay := len(os.Args) > 1 && os.Args[1] == "--stay"
	var lines []string
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "AZURE_") {
			continue
		}
		if catalog.IsCredential(name) {
			value = fmt.Sprintf("<credential, %d characters>", len(value))
		}
		lines = append(lines, name+"="+value)
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Printf("sampleapp: %d AZURE_* variables received\n", len(lines))
	bindings := printBindings(os.Getenv("SERVICE_BINDING_ROOT"))
	if !stay {
		if len(lines) == 0 {
			os.Exit(1)
		}
		return
	}
	fmt.Printf("sampleapp: %d bindings; running until stopped\n", bindings)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
}

// printBindings prints each binding directory under root: its type and
// provider entries and how many keys it holds (never their values).
func printBindings(root string) int {
	if root == "" {
		return 0
	}
	dirs, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	n := 0
	for _, d := range dirs {
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		dir := filepath.Join(root, d.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		keys := 0
		for _, f := range files {
			if !strings.HasPrefix(f.Name(), ".") {
				keys++
			}
		}
		typ, _ := os.ReadFile(filepath.Join(dir, "type"))
		provider, _ := os.ReadFile(filepath.Join(dir, "provider"))
		fmt.Printf("binding %s: type=%s provider=%s entries=%d\n", d.Name(), typ, provider, keys)
		n++
	}
	return n
}
