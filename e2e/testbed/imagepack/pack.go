package imagepack

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the timestamp of every file and of the image: identical inputs
// give identical digests, so re-importing an unchanged image is a no-op.
var epoch = time.Unix(0, 0).UTC()

// Pack writes a docker-archive tarball at out holding the image of binary on
// spec's base, tagged with stamp.Tags(spec.Ref), and returns the image
// digest.
func Pack(spec Spec, binary, out string, caBundle []byte, stamp Stamp) (string, error) {
	ref := spec.Ref
	tags, err := stamp.Tags(ref)
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	img, err := Image(spec.Base, binary, caBundle, stamp)
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	tmp := out + ".tmp"
	if err := writeTarball(tmp, img, tags); err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	return d.String(), nil
}

// Image is what the Dockerfiles build for binary on base: base's files as
// one layer (identical in every image, so stored once), the binary at
// /<basename> (root-owned, 0755) as the next, and the config a Dockerfile's
// final stage yields: the base's Env and WorkingDir, USER NonRootUser,
// ENTRYPOINT ["/<basename>"] and the stamp's labels.
func Image(base BaseImage, binary string, caBundle []byte, stamp Stamp) (v1.Image, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	bin := filepath.Base(binary)
	var adds []mutate.Addendum
	if len(base.Files) > 0 {
		l, err := layer(base.layerFiles(caBundle))
		if err != nil {
			return nil, fmt.Errorf("base layer: %w", err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "imagepack FROM " + base.Ref, Created: v1.Time{Time: epoch}}})
	}
	l, err := layer([]File{{Path: "/" + bin, Mode: 0o755, Content: data}})
	if err != nil {
		return nil, fmt.Errorf("binary layer: %w", err)
	}
	adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "imagepack COPY " + bin, Created: v1.Time{Time: epoch}}})
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// Without os/architecture containerd's platform filter drops the image.
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{"/" + bin},
		Env:        append([]string(nil), base.Env...),
		User:       NonRootUser,
		WorkingDir: base.WorkingDir,
		Labels:     stamp.Labels(bin),
	}
	return mutate.ConfigFile(img, cf)
}

// layer packs files, in order, into an uncompressed tar layer.
func layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(f.header()); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// writeTarball writes the docker archive of img tagged tags at path, with
// each image's RepoTags sorted: tarball.MultiRefWrite lists them in map
// order, so two packs of one image would differ in manifest.json alone and
// a release's SHA256SUMS would change from run to run.
func writeTarball(path string, img v1.Image, tags []name.Tag) error {
	refs := make(map[name.Reference]v1.Image, len(tags))
	for _, t := range tags {
		refs[t] = img
	}
	var buf bytes.Buffer
	if err := tarball.MultiRefWrite(refs, &buf); err != nil {
		return err
	}
	var out bytes.Buffer
	tr, tw := tar.NewReader(&buf), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if h.Name == "manifest.json" {
			var m tarball.Manifest
			if err := json.Unmarshal(body, &m); err != nil {
				return fmt.Errorf("manifest.json: %w", err)
			}
			for i := range m {
				sort.Strings(m[i].RepoTags)
			}
			if body, err = json.Marshal(m); err != nil {
				return fmt.Errorf("manifest.json: %w", err)
			}
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}
