package apiwrites

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// RequestKey is one series of apiserver_request_total, without the labels
// a count of writes does not need (component, scope, version, dry_run).
type RequestKey struct {
	Verb, Group, Resource, Subresource, Code string
}

// Requests are apiserver_request_total values.
type Requests map[RequestKey]float64

// WriteVerbs are the verbs that change objects.
var WriteVerbs = []string{"POST", "PUT", "PATCH", "DELETE"}

// Scrape reads apiserver_request_total from the API server's /metrics
// (the clientset's user must be allowed GET on the non-resource URL).
func Scrape(ctx context.Context, cs kubernetes.Interface) (Requests, error) {
	b, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scrape the API server's /metrics: %w", err)
	}
	return ParseRequests(string(b))
}

// ParseRequests reads the apiserver_request_total samples of a Prometheus
// text exposition; series that differ only in dropped labels are summed.
func ParseRequests(text string) (Requests, error) {
	const name = "apiserver_request_total{"
	out := Requests{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		labels, rest, err := parseLabels(line[len(name):])
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		k := RequestKey{Verb: labels["verb"], Group: labels["group"], Resource: labels["resource"],
			Subresource: labels["subresource"], Code: labels["code"]}
		out[k] += v
	}
	return out, sc.Err()
}

// parseLabels reads `k="v",...}` and returns the labels and what follows
// the closing brace.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.Index(s, `="`)
		if eq <= 0 {
			return nil, "", fmt.Errorf("malformed labels")
		}
		key := s[:eq]
		s = s[eq+2:]
		var v strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(s[i])
				}
				continue
			}
			v.WriteByte(s[i])
		}
		if i == len(s) {
			return nil, "", fmt.Errorf("unterminated label value")
		}
		labels[key] = v.String()
		s = s[i+1:]
	}
}

// Sub returns r minus before: the requests served between two scrapes.
// A series that went down (the API server restarted) is an error.
func (r Requests) Sub(before Requests) (Requests, error) {
	out := Requests{}
	for k, v := range r {
		d := v - before[k]
		if d < 0 {
			return nil, fmt.Errorf("apiserver_request_total%+v went down from %v to %v: the API server restarted", k, before[k], v)
		}
		if d > 0 {
			out[k] = d
		}
	}
	return out, nil
}

// Writes sums the write verbs per "VERB resource" (subresource after a
// slash: "PUT jobs/status"), every response code included.
func (r Requests) Writes() map[string]float64 {
	out := map[string]float64{}
	for k, v := range r {
		for _, verb := range WriteVerbs {
			if k.Verb == verb {
				res := k.Resource
				if k.Subresource != "" {
					res += "/" + k.Subresource
				}
				out[verb+" "+res] += v
			}
		}
	}
	return out
}

// Count sums the series of one verb and resource (no subresource), every
// response code included, or only code when it is not empty.
func (r Requests) Count(verb string, resource Resource, code string) float64 {
	var n float64
	for k, v := range r {
		if k.Verb == verb && k.Resource == string(resource) && k.Subresource == "" && (code == "" || k.Code == code) {
			n += v
		}
	}
	return n
}

// Summary prints Writes sorted, one "VERB resource=n" per item, for a report.
func (r Requests) Summary() string {
	w := r.Writes()
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%g", k, w[k]))
	}
	return strings.Join(parts, " ")
}
