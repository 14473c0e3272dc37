package imagepack

import (
	"archive/tar"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// BaseImage is what an image starts FROM: its reference, the config a
// Dockerfile inherits and the files of its root file system.
type BaseImage struct {
	Ref        string   // as written on the Dockerfiles' final FROM line
	User       string   // config.User before the Dockerfile's USER
	WorkingDir string   // config.WorkingDir; the Dockerfiles set no WORKDIR
	Env        []string // config.Env; the Dockerfiles set no ENV
	Files      []File   // every entry of the root file system, in tar order
}

// File is one entry of a layer. Content is nil for directories and for the
// CA bundle, whose bytes come from the build machine (see CABundle).
type File struct {
	Path     string // absolute, without trailing slash
	Dir      bool
	Mode     int64 // permission bits, including sticky
	UID, GID int
	Content  []byte
}

// CABundlePath is where the base image keeps its CA bundle; Go's crypto/x509
// looks there first on Linux, and SSL_CERT_FILE names it for everything else.
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// HostCABundle is the bundle imagepack copies into the images: the one of
// Debian's ca-certificates package, the package distroless takes it from.
const HostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// Distroless is gcr.io/distroless/static:nonroot, the base of
// Dockerfile.agent and Dockerfile.job, as far as a static Go binary can tell:
// no registry is reachable here, so these facts are declared, mirroring
// distroless' common/BUILD.bazel (passwd, group, home, tmp, cacerts) and its
// static image config. TestDockerfilesAgreeWithImagepack holds the
// Dockerfiles and imagepack to them. Not reproduced: tzdata, netbase
// (/etc/services), /etc/os-release and /etc/nsswitch.conf, none of which the
// product's binaries read.
var Distroless = BaseImage{
	Ref:        "gcr.io/distroless/static:nonroot",
	User:       "65532",
	WorkingDir: "/home/nonroot",
	Env: []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=" + CABundlePath,
	},
	Files: []File{
		{Path: "/etc", Dir: true, Mode: 0o755},
		{Path: "/etc/group", Mode: 0o644, Content: []byte(
			"root:x:0:\n" +
				"nobody:x:65534:\n" +
				"tty:x:5:\n" +
				"staff:x:50:\n" +
				"nonroot:x:65532:\n")},
		{Path: "/etc/passwd", Mode: 0o644, Content: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/ssl", Dir: true, Mode: 0o755},
		{Path: "/etc/ssl/certs", Dir: true, Mode: 0o755},
		{Path: CABundlePath, Mode: 0o644},
		{Path: "/home", Dir: true, Mode: 0o755},
		{Path: "/home/nonroot", Dir: true, Mode: 0o700, UID: nonRootID, GID: nonRootID},
		{Path: "/root", Dir: true, Mode: 0o700},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
	},
}

// Scratch is an empty base: the image holds the binary alone.
var Scratch = BaseImage{Ref: "scratch", WorkingDir: "/"}

const nonRootID = 65532

// NonRootUser is the config.User of every image, as the Dockerfiles' USER
// line states it: numeric, so that runAsNonRoot can verify it, and with the
// group, so that the process does not run with gid 0.
const NonRootUser = "65532:65532"

// errNoCABundle names the fix, since the cause (a missing Debian package) is
// not obvious from a failed image build.
var errNoCABundle = errors.New("install Debian's ca-certificates package (apt-get install ca-certificates)")

// CABundle reads and checks the CA bundle at path (HostCABundle when empty).
func CABundle(path string) ([]byte, error) {
	if path == "" {
		path = HostCABundle
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("CA bundle %s is missing: %w", path, errNoCABundle)
	}
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate: %w", path, errNoCABundle)
	}
	return data, nil
}

// layerFiles returns the base's files with the CA bundle's content filled in.
func (b BaseImage) layerFiles(caBundle []byte) []File {
	out := make([]File, len(b.Files))
	copy(out, b.Files)
	for i := range out {
		if out[i].Path == CABundlePath {
			out[i].Content = caBundle
		}
	}
	return out
}

// header is the tar header of f, at the epoch so that digests are
// reproducible.
func (f File) header() *tar.Header {
	h := &tar.Header{
		Name: f.Path[1:], Mode: f.Mode, Uid: f.UID, Gid: f.GID,
		ModTime: epoch, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(f.Content)),
	}
	if f.Dir {
		h.Name, h.Typeflag, h.Size = h.Name+"/", tar.TypeDir, 0
	}
	return h
}
