// Command sampleapp is the workload of the seed's example: a pod that consumes
// a Service Connector Secret through envFrom. It prints every AZURE_* variable
// it received, with credential values masked, so a demo or a test can show
// what a workload sees without ever printing a credential.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
)

func main() {
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
	if len(lines) == 0 {
		os.Exit(1)
	}
}
