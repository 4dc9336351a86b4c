//go:build unix

package artifacts

import (
	"context"
	"testing"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/moltfleet/molt/internal/s3test"
)

type s3Store struct {
	st  *S3
	srv *s3test.Server
}

// newS3Store is an S3 store over a new bucket of a real gateway.
func newS3Store(t *testing.T) s3Store {
	t.Helper()
	srv := s3test.Start(t)
	st, err := NewS3(context.Background(), S3Config{
		Bucket: srv.Bucket(t, "packs"), Prefix: "molt", Endpoint: srv.Endpoint(), Region: "us-east-1", PathStyle: true,
		Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s3Store{st, srv}
}

// The store down fails reads with an error, and they work again once it
// is back; a missing bucket is refused at start.
func TestS3Outage(t *testing.T) {
	s := newS3Store(t)
	ctx := context.Background()
	if err := s.st.Publish(ctx, "1.0.0", packDir(t, "", map[string]string{"f": "x"})); err != nil {
		t.Fatal(err)
	}
	s.srv.Stop()
	if _, err := s.st.Open(ctx, "1.0.0", "f"); err == nil {
		t.Fatal("a read succeeded with the store down")
	}
	s.srv.Start()
	if got, err := read(t, s.st, "1.0.0", "f"); err != nil || got != "x" {
		t.Fatalf("after the store came back: %q %v", got, err)
	}
	_, err := NewS3(ctx, S3Config{Bucket: "missing", Endpoint: s.srv.Endpoint(), Region: "us-east-1", PathStyle: true,
		Creds: credentials.NewStaticV4(s.srv.AccessKey, s.srv.SecretKey, "")})
	if err == nil {
		t.Fatal("a missing bucket was accepted")
	}
}
