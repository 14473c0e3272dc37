package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// probeCommand is the `helm test` check: distroless images have no curl, so
// scctl itself GETs the agent's /readyz until it answers 2xx or time runs out.
func (a *App) probeCommand() *cobra.Command {
	var timeout, interval time.Duration
	cmd := &cobra.Command{
		Use:   "probe URL",
		Short: "GET URL until it answers 2xx (used by helm test against the agent's /readyz)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.HasPrefix(args[0], "http://") && !strings.HasPrefix(args[0], "https://") {
				return usagef("URL: %q is not an http(s) URL", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			last, err := probe(ctx, args[0], interval)
			if err != nil {
				return failedf("%s did not answer 2xx within %s: %s", args[0], timeout, last)
			}
			fmt.Fprintf(a.Stdout, "%s: %s\n", args[0], last)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between attempts")
	return cmd
}

// probe returns the last outcome as a short description.
func probe(ctx context.Context, url string, interval time.Duration) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := "no attempt finished"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err.Error(), err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return last, nil
			}
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}
