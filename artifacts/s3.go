package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where an S3 store is.
type S3Config struct {
	Bucket string
	Prefix string // keys are PREFIX/VERSION/PATH
	// Endpoint is the store's URL (https://s3.amazonaws.com when empty);
	// http:// for a store without TLS.
	Endpoint string
	Region   string
	// PathStyle addresses the bucket in the path (on-premise stores)
	// rather than in the host name.
	PathStyle bool
	// Creds are the credentials; nil: the environment, ~/.aws/credentials,
	// then the instance's IAM role.
	Creds *credentials.Credentials
}

// parseS3 reads s3://BUCKET/PREFIX?endpoint=&region=&path-style=.
func parseS3(u *url.URL) (S3Config, error) {
	c := S3Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if c.Bucket == "" {
		return c, errors.New("no bucket: want s3://BUCKET/PREFIX")
	}
	if u.User != nil {
		return c, errors.New("credentials do not go in the URL: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials")
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "path-style":
		default:
			return c, fmt.Errorf("unknown parameter %q (known: endpoint, region, path-style)", k)
		}
	}
	c.Endpoint = first(q.Get("endpoint"), os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"))
	c.Region = first(q.Get("region"), os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
	// On-premise stores (an endpoint of one's own) mostly want the
	// bucket in the path; AWS wants it in the host name.
	c.PathStyle = c.Endpoint != ""
	if v := q.Get("path-style"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("path-style=%q: want true or false", v)
		}
		c.PathStyle = b
	}
	return c, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// S3 keeps packs in a bucket of an S3-compatible store.
type S3 struct {
	c   *minio.Client
	cfg S3Config
}

// NewS3 connects to the store and checks that the bucket exists.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	host, secure := "s3.amazonaws.com", true
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("S3 endpoint %q: want http(s)://HOST[:PORT]", cfg.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	creds := cfg.Creds
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: cfg.Region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("S3 %s: %w", host, err)
	}
	s := &S3{c: c, cfg: cfg}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: the bucket does not exist (create it first)", s)
	}
	return s, nil
}

func (s *S3) String() string {
	ep := s.cfg.Endpoint
	if ep == "" {
		ep = "https://s3.amazonaws.com"
	}
	return fmt.Sprintf("s3://%s/%s at %s", s.cfg.Bucket, s.cfg.Prefix, ep)
}

// Publish uploads every file of dir under VERSION/, after removing what
// an interrupted publication left. A PUT is durable once the store
// answers it.
func (s *S3) Publish(ctx context.Context, version, dir string) error {
	if err := s.Remove(ctx, version); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("publish %s: %s is not a regular file", version, p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		k := key(s.cfg.Prefix, version, filepath.ToSlash(rel))
		if _, err := s.c.FPutObject(ctx, s.cfg.Bucket, k, p, minio.PutObjectOptions{ContentType: "application/octet-stream"}); err != nil {
			return fmt.Errorf("publish %s to %s: %w", k, s, err)
		}
		return nil
	})
}

// Remove deletes every object under VERSION/.
func (s *S3) Remove(ctx context.Context, version string) error {
	prefix := key(s.cfg.Prefix, version, "")
	objs := s.c.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true})
	for e := range s.c.RemoveObjects(ctx, s.cfg.Bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("remove %s from %s: %w", e.ObjectName, s, e.Err)
		}
	}
	return nil
}

func (s *S3) Open(ctx context.Context, version, p string) (File, error) {
	k := key(s.cfg.Prefix, version, p)
	obj, err := s.c.GetObject(ctx, s.cfg.Bucket, k, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%s: %s: %w", s, k, err)
	}
	return s3File{obj, info}, nil
}

// Presign signs a GET of the file for ttl (at most 7 days, the limit of
// S3's signatures).
func (s *S3) Presign(ctx context.Context, version, p string, ttl time.Duration) (string, error) {
	u, err := s.c.PresignedGetObject(ctx, s.cfg.Bucket, key(s.cfg.Prefix, version, p), ttl, nil)
	if err != nil {
		return "", fmt.Errorf("%s: presign: %w", s, err)
	}
	return u.String(), nil
}

type s3File struct {
	*minio.Object
	info minio.ObjectInfo
}

func (f s3File) Size() int64        { return f.info.Size }
func (f s3File) ModTime() time.Time { return f.info.LastModified }
