package testbed

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// iptablesChains returns the user-defined chains per table of an
// iptables-save dump ("table/chain" keys).
func iptablesChains(save string) map[string]bool {
	out := map[string]bool{}
	table := ""
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			out[table+"/"+strings.Fields(line[1:])[0]] = true
		}
	}
	return out
}

// ownedChain reports whether a chain belongs to the node components:
// KUBE-* (kubelet, kube-proxy) and CNI-* (bridge ipMasq, portmap).
func ownedChain(chain string) bool {
	return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-")
}

// planIptables turns an iptables-save dump into an iptables-restore
// --noflush script that removes the node components' chains: first every
// rule elsewhere that jumps into them, then flush all, then delete all
// (chains reference each other, so no chain can be deleted before all are
// flushed). Chains listed in baseline ("table/chain", recorded before the
// cluster started) pre-date the test bed and are left alone. Rules are
// deleted by their exact iptables-save spelling, which iptables-restore
// parses with the same quoting rules.
func planIptables(save string, baseline map[string]bool) string {
	type tableState struct {
		name   string
		chains []string // ours, in dump order
		dels   []string
	}
	var tables []*tableState
	var cur *tableState
	ours := func(chain string) bool {
		return cur != nil && ownedChain(chain) && !baseline[cur.name+"/"+chain]
	}
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &tableState{name: line[1:]}
			tables = append(tables, cur)
		case strings.HasPrefix(line, ":"):
			if c := strings.Fields(line[1:])[0]; ours(c) {
				cur.chains = append(cur.chains, c)
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 || ours(f[1]) {
				continue // rules inside our chains go away with the flush
			}
			if target := jumpTarget(f); target != "" && ours(target) {
				cur.dels = append(cur.dels, "-D"+line[2:])
			}
		}
	}
	var b strings.Builder
	for _, t := range tables {
		if len(t.chains) == 0 && len(t.dels) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", t.name)
		for _, d := range t.dels {
			b.WriteString(d + "\n")
		}
		for _, c := range t.chains {
			fmt.Fprintf(&b, "-F %s\n", c)
		}
		for _, c := range t.chains {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// jumpTarget is the -j/-g target of a rule split into fields; quoted comment
// text cannot contain " -j " followed by a KUBE-/CNI- chain in practice, and
// the last -j wins just as in iptables' own parser.
func jumpTarget(f []string) string {
	t := ""
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-j" || f[i] == "-g" || f[i] == "--jump" || f[i] == "--goto" {
			t = f[i+1]
		}
	}
	return t
}

// iptablesFamilies are the save/restore pairs: kubelet creates its chains
// for IPv4 and IPv6.
var iptablesFamilies = [][2]string{{"iptables-save", "iptables-restore"}, {"ip6tables-save", "ip6tables-restore"}}

// snapshotChains records the existing chains of both families, so that a
// teardown leaves chains that were there before the cluster.
func snapshotChains(ctx context.Context) []string {
	var out []string
	for _, fam := range iptablesFamilies {
		b, err := exec.CommandContext(ctx, fam[0]).Output()
		if err != nil {
			continue
		}
		for k := range iptablesChains(string(b)) {
			out = append(out, fam[0]+":"+k)
		}
	}
	slices.Sort(out)
	return out
}

// cleanIptables removes the node components' chains of both families.
func cleanIptables(ctx context.Context, baseline []string) error {
	var errs []string
	for _, fam := range iptablesFamilies {
		save, err := exec.CommandContext(ctx, fam[0]).Output()
		if err != nil {
			continue // family not available (no ip6tables, no kernel support)
		}
		base := map[string]bool{}
		for _, b := range baseline {
			if k, ok := strings.CutPrefix(b, fam[0]+":"); ok {
				base[k] = true
			}
		}
		script := planIptables(string(save), base)
		if script == "" {
			continue
		}
		cmd := exec.CommandContext(ctx, fam[1], "--noflush")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v: %s", fam[1], err, strings.TrimSpace(string(out))))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("iptables cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}
