package imagepack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is where the Dockerfiles live, relative to this package.
const repoRoot = "../../.."

// bases are the FROM images whose files and config imagepack reproduces.
var bases = map[string]BaseImage{Distroless.Ref: Distroless}

// TestDockerfilesAgreeWithImagepack evaluates each Dockerfile's final stage
// on top of the declared base and requires imagepack's image for the same
// binary and build args to have the same config and the same files, and
// its go build the same flags: the images CI tests are the images shipped.
func TestDockerfilesAgreeWithImagepack(t *testing.T) {
	ca := testCA(t)
	for _, binary := range []string{"agent", "job"} {
		t.Run(binary, func(t *testing.T) {
			df := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile."+binary))
			for _, tc := range []struct {
				name      string
				buildArgs map[string]string
				stamp     Stamp
			}{
				{"release", map[string]string{"VERSION": "v1.2.3", "REVISION": "0123abcd"}, Stamp{Version: "v1.2.3", Revision: "0123abcd"}},
				{"defaults", nil, Stamp{}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					want := df.evalFinal(t, tc.buildArgs)
					require.Contains(t, bases, want.from, "imagepack does not know the Dockerfile's base: declare it in base.go")
					require.Len(t, want.copies, 1, "the final stage copies exactly the binary")
					cp := want.copies[0]
					assert.Equal(t, copyOp{from: "build", src: "/out/" + binary, dst: "/" + binary}, cp)

					specs, err := Select(binary)
					require.NoError(t, err)
					assert.Equal(t, want.from, specs[0].Base.Ref, "imagepack's base for %s", binary)
					img, err := Image(specs[0].Base, fakeBinary(t, binary), ca, tc.stamp)
					require.NoError(t, err)
					cf, err := img.ConfigFile()
					require.NoError(t, err)
					assert.Equal(t, want.config, cf.Config)

					// Files: the base's, then the COPY (go build writes 0755,
					// COPY without --chown keeps root).
					wantFiles := fileFacts(bases[want.from].Files)
					wantFiles = append(wantFiles, fileFact{Path: cp.dst, Mode: 0o755})
					assert.Equal(t, wantFiles, imageFiles(t, img))

					build := df.evalBuild(t, tc.buildArgs)
					assert.Equal(t, tc.stamp.GoLDFlags(), build.ldflags)
					assert.Equal(t, cp.src, build.out)
					assert.Equal(t, "./"+binary, build.pkg)
					assert.Equal(t, withoutLDFlags(goBuildFlags(tc.stamp)[1:]), build.flags, "go build flags other than -ldflags")
					assert.Contains(t, buildEnv, "CGO_ENABLED=0")
					assert.Contains(t, build.env, "CGO_ENABLED=0")
				})
			}
		})
	}
}

// TestDockerfilesDifferOnlyInBinary: the two entry points are one file
// parameterised by the binary's name, so they cannot drift apart either.
func TestDockerfilesDifferOnlyInBinary(t *testing.T) {
	read := func(binary string) []string {
		data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile."+binary))
		require.NoError(t, err)
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			switch l {
			case "ARG BINARY=" + binary:
				lines[i] = "ARG BINARY=<binary>"
			case `ENTRYPOINT ["/` + binary + `"]`:
				lines[i] = `ENTRYPOINT ["/<binary>"]`
			}
		}
		return lines
	}
	agent, job := read("agent"), read("job")
	assert.Equal(t, agent, job)
	assert.Contains(t, agent, "ARG BINARY=<binary>")
	assert.Contains(t, agent, `ENTRYPOINT ["/<binary>"]`)
}

// TestMakefileLDFlagsMatchTheDefault: imagepack's own -X (used when LDFLAGS
// is not exported) is the Makefile's, so `go run ./e2e/cmd/imagepack` and
// `make images` stamp binaries alike.
func TestMakefileLDFlagsMatchTheDefault(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=\s*(.*)$`).FindSubmatch(data)
	require.NotNil(t, m, "Makefile defines no LDFLAGS")
	makefile := strings.ReplaceAll(string(m[1]), "$(VERSION)", "v9.9.9")
	assert.Equal(t, Stamp{Version: "v9.9.9"}.GoLDFlags(), "-s -w "+makefile)
}

// dockerfile is the part of a Dockerfile the tests evaluate.
type dockerfile struct {
	globalArgs []instr // ARGs before the first FROM
	stages     []stage
}

type stage struct {
	from, name string
	instrs     []instr
}

type instr struct{ cmd, args string }

type copyOp struct{ from, src, dst string }

// parseDockerfile reads logical lines: comments dropped, continuations
// joined.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var df dockerfile
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			from, name, _ := strings.Cut(in.args, " AS ")
			df.stages = append(df.stages, stage{from: from, name: name})
		case len(df.stages) == 0:
			require.Equal(t, "ARG", in.cmd, "%s: only ARG may precede FROM", path)
			df.globalArgs = append(df.globalArgs, in)
		default:
			s := &df.stages[len(df.stages)-1]
			s.instrs = append(s.instrs, in)
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, df.stages, "%s has no FROM", path)
	return df
}

// scope declares args as Docker does: a global or stage ARG takes the build
// arg if given, else its default; a stage's ARG without a default takes the
// global's value.
func declare(vars, globals map[string]string, in instr, buildArgs map[string]string) {
	k, def, hasDef := strings.Cut(in.args, "=")
	switch v, ok := buildArgs[k]; {
	case ok:
		vars[k] = v
	case hasDef:
		vars[k] = def
	default:
		vars[k] = globals[k]
	}
}

func (df dockerfile) globals(buildArgs map[string]string) map[string]string {
	g := map[string]string{}
	for _, in := range df.globalArgs {
		declare(g, nil, in, buildArgs)
	}
	return g
}

func expand(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return os.Expand(s, func(k string) string {
		v, ok := vars[k]
		if !ok {
			t.Errorf("$%s used but not declared in this stage", k)
		}
		return v
	})
}

type finalStage struct {
	from   string
	config v1.Config
	copies []copyOp
}

// evalFinal applies the last stage's instructions to its base's config.
func (df dockerfile) evalFinal(t *testing.T, buildArgs map[string]string) finalStage {
	t.Helper()
	g := df.globals(buildArgs)
	st := df.stages[len(df.stages)-1]
	out := finalStage{from: expand(t, st.from, g)}
	base, ok := bases[out.from]
	if !ok {
		return out
	}
	out.config = v1.Config{User: base.User, WorkingDir: base.WorkingDir, Env: append([]string(nil), base.Env...)}
	vars := map[string]string{}
	for _, in := range st.instrs {
		args := in.args
		if in.cmd != "ARG" && in.cmd != "ENTRYPOINT" {
			args = expand(t, args, vars)
		}
		switch in.cmd {
		case "ARG":
			declare(vars, g, in, buildArgs)
		case "LABEL":
			if out.config.Labels == nil {
				out.config.Labels = map[string]string{}
			}
			for _, kv := range strings.Fields(args) {
				k, v, ok := strings.Cut(kv, "=")
				require.True(t, ok, "LABEL %q", kv)
				out.config.Labels[k] = strings.Trim(v, `"`)
			}
		case "USER":
			out.config.User = args
		case "WORKDIR":
			out.config.WorkingDir = args
		case "ENV":
			out.config.Env = append(out.config.Env, args)
		case "ENTRYPOINT":
			var ep []string
			require.NoError(t, json.Unmarshal([]byte(args), &ep), "ENTRYPOINT must be exec form: the base has no shell")
			out.config.Entrypoint = ep
		case "COPY":
			f := strings.Fields(args)
			require.Len(t, f, 3, "COPY --from=<stage> <src> <dst> expected, got %q", args)
			from, ok := strings.CutPrefix(f[0], "--from=")
			require.True(t, ok, "COPY %q", args)
			out.copies = append(out.copies, copyOp{from: from, src: f[1], dst: f[2]})
		default:
			t.Errorf("final stage: %s is not modelled by this test (nor by imagepack)", in.cmd)
		}
	}
	return out
}

type buildStep struct {
	ldflags, out, pkg string
	flags, env        []string
}

var (
	ldflagsRE = regexp.MustCompile(`-ldflags "([^"]*)"`)
	goBuildRE = regexp.MustCompile(`^(.*)go build (.*) -o (\S+) (\S+)$`)
)

// evalBuild finds the build stage's `go build` and splits it into its
// environment, flags, output and package.
func (df dockerfile) evalBuild(t *testing.T, buildArgs map[string]string) buildStep {
	t.Helper()
	g := df.globals(buildArgs)
	var st stage
	for _, s := range df.stages {
		if s.name == "build" {
			st = s
		}
	}
	require.NotEmpty(t, st.from, "no stage named build")
	vars := map[string]string{}
	for _, in := range st.instrs {
		switch {
		case in.cmd == "ARG":
			declare(vars, g, in, buildArgs)
		case in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			run := expand(t, in.args, vars)
			m := goBuildRE.FindStringSubmatch(run)
			require.NotNil(t, m, "go build line %q", run)
			lm := ldflagsRE.FindStringSubmatch(m[2])
			require.NotNil(t, lm, "go build without -ldflags: %q", run)
			return buildStep{
				ldflags: lm[1], out: m[3], pkg: m[4],
				flags: strings.Fields(ldflagsRE.ReplaceAllString(m[2], "")),
				env:   strings.Fields(m[1]),
			}
		}
	}
	t.Fatal("build stage has no RUN go build")
	return buildStep{}
}

// withoutLDFlags drops "-ldflags <value>" from go build flags.
func withoutLDFlags(flags []string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		if flags[i] == "-ldflags" {
			i++
			continue
		}
		out = append(out, flags[i])
	}
	return out
}

// fileFact is what a test compares of a layer entry.
type fileFact struct {
	Path     string
	Dir      bool
	Mode     int64
	UID, GID int
}

func fileFacts(files []File) []fileFact {
	out := make([]fileFact, 0, len(files))
	for _, f := range files {
		out = append(out, fileFact{Path: f.Path, Dir: f.Dir, Mode: f.Mode, UID: f.UID, GID: f.GID})
	}
	return out
}

func (f fileFact) String() string {
	return fmt.Sprintf("%s dir=%v %o %d:%d", f.Path, f.Dir, f.Mode, f.UID, f.GID)
}
