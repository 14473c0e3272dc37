package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// clusterState is the cluster.json of a state directory: what is running.
type clusterState struct {
	Mode       Mode      `json:"mode"`
	NodeName   string    `json:"nodeName"`
	NodeIP     string    `json:"nodeIP"`
	Server     string    `json:"server"`
	Kubeconfig string    `json:"kubeconfig"`
	Started    time.Time `json:"started"`
}

func readClusterState(l Layout) (*clusterState, error) {
	b, err := os.ReadFile(l.StateFile())
	if err != nil {
		return nil, err
	}
	var s clusterState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", l.StateFile(), err)
	}
	return &s, nil
}

// componentsOf lists the components a mode runs.
func componentsOf(m Mode) []string {
	if m == ModeFull {
		return []string{"containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}
	}
	return []string{"etcd", "kube-apiserver", "kube-controller-manager"}
}

// ComponentStatus is one line of Status.
type ComponentStatus struct {
	Name   string
	PID    int
	Status string // running, gone, pid reused, no pid file
}

// StatusReport describes the cluster in a state directory.
type StatusReport struct {
	Mode       Mode
	Kubeconfig string
	Components []ComponentStatus
	Healthy    bool   // every component running and /readyz ok
	Detail     string // why not healthy
}

// Status inspects the cluster in dir without changing anything.
func Status(ctx context.Context, dir string) StatusReport {
	l := Layout{Dir: dir}
	st, err := readClusterState(l)
	if err != nil {
		return StatusReport{Detail: "no cluster (" + l.StateFile() + " missing)"}
	}
	r := StatusReport{Mode: st.Mode, Kubeconfig: st.Kubeconfig, Healthy: true}
	for _, c := range componentsOf(st.Mode) {
		cs := ComponentStatus{Name: c, Status: "no pid file"}
		if rec, err := readPidFile(l.PidFile(c)); err == nil {
			cs.PID, cs.Status = rec.PID, hostProc.check(rec).String()
		}
		if cs.Status != "running" {
			r.Healthy, r.Detail = false, c+" is not running"
		}
		r.Components = append(r.Components, cs)
	}
	if r.Healthy {
		in := &instance{l: l}
		cs, err := in.clientset()
		if err == nil {
			err = cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
		}
		if err != nil {
			r.Healthy, r.Detail = false, "apiserver not ready: "+err.Error()
		}
	}
	return r
}

// UpOptions configure Up.
type UpOptions struct {
	Dir      string // state directory (DefaultStateDir)
	Mode     Mode
	Images   []string // image tarballs to import (full mode); must include the pause image
	Progress io.Writer
}

// Up starts a long-lived cluster in opts.Dir whose processes outlive the
// caller, as `make cluster` needs, and returns the admin kubeconfig path.
// A healthy cluster of the same or a larger mode is reused; leftovers of a
// dead one are torn down first.
func Up(ctx context.Context, opts UpOptions) (string, error) {
	l := Layout{Dir: opts.Dir}
	if r := Status(ctx, l.Dir); r.Healthy {
		if r.Mode == opts.Mode || r.Mode == ModeFull {
			fmt.Fprintf(opts.Progress, "testbed: %s cluster already running in %s\n", r.Mode, l.Dir)
			return r.Kubeconfig, nil
		}
		return "", fmt.Errorf("a %s cluster is running in %s: run make cluster-down first", r.Mode, l.Dir)
	}
	if err := checkBinaries(BinDir()); err != nil {
		return "", err
	}
	t0 := time.Now()
	// Anything there now is debris of a crashed or half-stopped cluster.
	if err := Teardown(ctx, l.Dir, TeardownOptions{Wipe: true, Progress: opts.Progress}); err != nil {
		return "", fmt.Errorf("cleaning up the previous cluster: %w", err)
	}
	in := &instance{
		l: l, binDir: BinDir(), mode: opts.Mode, detach: true, nodeName: nodeName(),
		apiPort: fullAPIPort, etcdPort: fullEtcdPort, peerPort: fullEtcdPeerPrt, cmPort: 10257,
		bindAddr: "127.0.0.1", progress: opts.Progress,
	}
	ip, err := nodeIP()
	if opts.Mode == ModeFull {
		if err != nil {
			return "", err
		}
		// Pods reach the apiserver at the node address (the `kubernetes`
		// Service's endpoint), so it must listen beyond loopback.
		in.bindAddr = "0.0.0.0"
	}
	if err == nil {
		in.nodeIP = ip
	}
	steps := 5
	if opts.Mode == ModeFull {
		steps = 13
	}
	s := &stepper{w: opts.Progress, total: steps}
	err = in.up(ctx, s, opts)
	if err != nil {
		stopErr := in.stopAll(context.WithoutCancel(ctx))
		return "", errors.Join(err, stopErr)
	}
	st := clusterState{Mode: opts.Mode, NodeName: in.nodeName, Server: in.server(), Kubeconfig: l.AdminKubeconfig(), Started: time.Now()}
	if in.nodeIP != nil {
		st.NodeIP = in.nodeIP.String()
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(l.StateFile(), b, 0o644); err != nil {
		return "", err
	}
	fmt.Fprintf(opts.Progress, "testbed: %s cluster up in %s\n", opts.Mode, time.Since(t0).Round(100*time.Millisecond))
	return l.AdminKubeconfig(), nil
}

func (in *instance) up(ctx context.Context, s *stepper, opts UpOptions) error {
	if opts.Mode == ModeFull {
		if err := s.run("host packages", func() error { return ensureHostPackages(ctx, opts.Progress) }); err != nil {
			return err
		}
		if err := s.run("record host baseline", func() error { return recordBaseline(ctx, in.l) }); err != nil {
			return err
		}
	}
	if err := s.run("PKI and kubeconfigs", in.prepare); err != nil {
		return err
	}
	if opts.Mode == ModeFull {
		if err := s.run("containerd", func() error { return in.startContainerd(ctx) }); err != nil {
			return err
		}
		if err := s.run(fmt.Sprintf("import %d images", len(opts.Images)), func() error { return importImages(ctx, in.l, opts.Images) }); err != nil {
			return err
		}
	}
	if err := in.startControlPlane(ctx, s); err != nil {
		return err
	}
	if opts.Mode == ModeFull {
		for _, c := range []struct {
			name string
			f    func() error
		}{{"kube-scheduler", in.startScheduler}, {"kubelet", in.startKubelet}, {"kube-proxy", in.startKubeProxy}} {
			if err := s.run(c.name, c.f); err != nil {
				return err
			}
		}
		if err := s.run("node "+in.nodeName+" Ready", func() error { return in.waitNodeReady(ctx) }); err != nil {
			return err
		}
	}
	return s.run("ServiceAccount default/default", func() error { return in.waitDefaultServiceAccount(ctx) })
}

// LoadImages imports image tarballs into the running full cluster's
// containerd, e.g. after `make images` rebuilt them.
func LoadImages(ctx context.Context, dir string, tars []string) error {
	l := Layout{Dir: dir}
	st, err := readClusterState(l)
	if err != nil || st.Mode != ModeFull {
		return errors.New("no full cluster running: run make cluster")
	}
	return importImages(ctx, l, tars)
}

// ImageTarballs lists the image tarballs in dir (_output/images).
func ImageTarballs(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	sort.Strings(m)
	return m
}

// Down tears the cluster in dir down and wipes its data.
func Down(ctx context.Context, dir string, progress io.Writer) error {
	return Teardown(ctx, dir, TeardownOptions{Wipe: true, Progress: progress})
}
