package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/updater/pack"
)

// source is where one order's pack comes from.
type source interface {
	// manifest returns manifest.json and its signature, unverified.
	manifest(ctx context.Context) (manifest, sig []byte, err error)
	// verified is told the manifest once its signature checked out.
	verified(m *pack.Manifest) error
	// location names an artifact for state and messages.
	location(a pack.Artifact) string
	Close() error
}

func (u *Updater) openSource(s Source) (source, error) {
	if s.Pack != "" {
		r, err := pack.Open(s.Pack)
		if err != nil {
			return nil, fmt.Errorf("open pack: %w", err)
		}
		return &packSource{r: r, keys: u.keys, path: s.Pack}, nil
	}
	base, err := url.Parse(s.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%w: source %q is not an http(s) URL", ErrBadOrder, s.URL)
	}
	return &httpSource{u: u, base: s.URL}, nil
}

type packSource struct {
	r    *pack.Reader
	keys []pack.Key
	path string
}

func (p *packSource) manifest(context.Context) ([]byte, []byte, error) {
	return p.r.ManifestBytes(), p.r.SignatureBytes(), nil
}

// verified checks that the pack holds exactly the files the manifest names.
func (p *packSource) verified(*pack.Manifest) error {
	_, err := p.r.Verify(p.keys)
	return err
}

func (p *packSource) location(a pack.Artifact) string { return p.path + "!" + a.Path }
func (p *packSource) Close() error                    { return p.r.Close() }

type httpSource struct {
	u    *Updater
	base string
}

func (h *httpSource) manifest(ctx context.Context) ([]byte, []byte, error) {
	mb, err := h.getSmall(ctx, pack.ManifestName, pack.MaxManifestSize)
	if err != nil {
		return nil, nil, err
	}
	sb, err := h.getSmall(ctx, pack.SignatureName, pack.MaxSignatureSize)
	if err != nil {
		return nil, nil, err
	}
	return mb, sb, nil
}

func (h *httpSource) verified(*pack.Manifest) error { return nil }

func (h *httpSource) location(a pack.Artifact) string {
	if isURL(a.Path) {
		return a.Path
	}
	// Manifest paths are checked clean and relative (pack.SafePath).
	s, err := url.JoinPath(h.base, a.Path)
	if err != nil {
		return strings.TrimSuffix(h.base, "/") + "/" + a.Path
	}
	return s
}

func (h *httpSource) Close() error { return nil }

func isURL(p string) bool {
	return strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://")
}

// getSmall fetches a small file under the base URL, bounded by limit,
// with the retry policy.
func (h *httpSource) getSmall(ctx context.Context, name string, limit int64) ([]byte, error) {
	target, err := url.JoinPath(h.base, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOrder, err)
	}
	var out []byte
	err = h.u.withRetry(ctx, name, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return false, err
		}
		resp, err := h.u.client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, statusError(resp)
		}
		if resp.ContentLength > limit {
			return false, fmt.Errorf("%w: %d bytes, the limit is %d", pack.ErrTooLarge, resp.ContentLength, limit)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return false, err
		}
		if int64(len(b)) > limit {
			return false, fmt.Errorf("%w: larger than %d bytes", pack.ErrTooLarge, limit)
		}
		out = b
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return out, nil
}

// errHTTPStatus is an answer that another attempt would not change (404,
// 403, ...). It is not a refusal: the server may be fixed.
var errHTTPStatus = errors.New("http error")

// statusError turns an unwanted status into an error; 408, 429 and 5xx
// are worth retrying, others are not.
func statusError(resp *http.Response) error {
	c := resp.StatusCode
	msg := fmt.Sprintf("%s: %s", resp.Request.URL.Redacted(), resp.Status)
	if c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500 {
		// A server that says when to come back is believed (within the
		// backoff's cap), so a fleet backs off as the server asks.
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			return retryAfterError{msg: msg, after: time.Duration(secs) * time.Second}
		}
		return errors.New(msg)
	}
	return fmt.Errorf("%w: %s", errHTTPStatus, msg)
}

// retryAfterError is a retryable answer with the server's Retry-After.
type retryAfterError struct {
	msg   string
	after time.Duration
}

func (r retryAfterError) Error() string { return r.msg + " (retry after " + r.after.String() + ")" }
