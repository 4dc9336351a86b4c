// Package artifacts keeps the files of imported packs where agents
// download them from: a directory of the server's (DATA/packs, the
// default) or an S3-compatible object store that several server replicas
// share. A pack's files are published once verified and are read by
// version and path; the signed manifest, not the store, decides what an
// agent trusts, so a store's copy is only ever a copy.
package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Store holds the packs' files.
type Store interface {
	// Publish makes the verified pack in directory dir the files of
	// version, replacing what an interrupted publication left, and
	// returns once they are durable. dir may be consumed.
	Publish(ctx context.Context, version, dir string) error
	// Remove removes version's files.
	Remove(ctx context.Context, version string) error
	// Open opens file p (slash-separated) of version; ErrNotFound when
	// there is none.
	Open(ctx context.Context, version, p string) (File, error)
	// Presign returns a URL that serves file p of version to anyone who
	// has it until ttl passes (Range requests included), or "" when the
	// store has no such URLs and the server serves the file itself.
	Presign(ctx context.Context, version, p string, ttl time.Duration) (string, error)
	// String names the store in messages (no secrets).
	String() string
}

// File is an open file of a pack: seekable, for Range requests.
type File interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// ErrNotFound is returned by Open for a file the store does not have.
var ErrNotFound = errors.New("artifact not found")

// Open opens the store spec names: "" for the directory DATA/packs
// (dataDir), or s3://BUCKET[/PREFIX] with the endpoint, region and
// credentials taken from the query (endpoint=, region=, path-style=) and
// the usual environment and files (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
// AWS_ENDPOINT_URL_S3, ~/.aws/credentials, an instance's IAM role).
func Open(ctx context.Context, spec, dataDir string) (Store, error) {
	if spec == "" {
		return NewDir(filepath.Join(dataDir, "packs"))
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("--artifacts %q: %w", spec, err)
	}
	switch u.Scheme {
	case "s3":
		cfg, err := parseS3(u)
		if err != nil {
			return nil, fmt.Errorf("--artifacts %q: %w", spec, err)
		}
		return NewS3(ctx, cfg)
	default:
		return nil, fmt.Errorf("--artifacts %q: want s3://BUCKET/PREFIX, or nothing for DATA/packs", spec)
	}
}

// key is the object key of file p of version under prefix.
func key(prefix, version, p string) string {
	k := version + "/" + p
	if prefix != "" {
		k = strings.TrimSuffix(prefix, "/") + "/" + k
	}
	return k
}
