//go:build unix

package console_test

// One headless Chromium serves every browser test of the package: each
// test's browser (newBrowser) is a new browser context in it, an
// incognito-like profile with its own cookies, storage and cache, and a
// tab in a window of its own. Starting Chromium costs about 2 s of CPU
// and its first renderers more; a browser context costs a renderer.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/moltfleet/molt/internal/testtool"
)

var shared struct {
	once sync.Once
	ctx  context.Context // the browser's first tab: new contexts derive from it
	err  error
	stop func()
}

// chromium finds the browser, or skips (fails in CI) with one line.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, ok := testtool.Have(t, name, ""); ok {
			return p
		}
	}
	return testtool.Need(t, "chromium", "apt-get install chromium")
}

// chromiumFlags are chromedp's defaults (Puppeteer's: no background
// networking, extensions, sync, default apps, hang monitor, renderer
// backgrounding...) and what the tests need: headless without GPU or
// sandbox, a 1440×900 window, English, and the dev CA's certificates
// accepted (the browser tests check the console, tls_test.go the
// certificates). The rest turns off what a test never uses and would
// only cost CPU: component updates, reporting, translation, media
// routing, optimization hints.
func chromiumFlags(exe, tmp string) []chromedp.ExecAllocatorOption {
	return append(append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...),
		chromedp.ExecPath(exe), chromedp.Env("TMPDIR="+tmp),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1440, 900), chromedp.Flag("lang", "en-US"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,OptimizationHints,MediaRouter,"+
			"DialMediaRouteProvider,CertificateTransparencyComponentUpdater,AutofillServerCommunication,PaintHolding"),
	)
}

// sharedChromium starts the package's Chromium the first time a test
// asks and returns its first tab's context.
func sharedChromium(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	shared.once.Do(func() {
		// Chromium leaves org.chromium.Chromium.* behind in its TMPDIR
		// when it is stopped, so it gets a directory of its own, removed
		// after it. The name is short: a Unix socket's path (its
		// SingletonSocket in there) has at most 107 bytes, which a
		// directory under CI's TMPDIR can exceed.
		tmp, err := os.MkdirTemp("", "cr")
		if err != nil {
			shared.err = err
			return
		}
		actx, cancelA := chromedp.NewExecAllocator(context.Background(), chromiumFlags(exe, tmp)...)
		ctx, cancel := chromedp.NewContext(actx)
		shared.stop = func() {
			cancel()
			cancelA()
			os.RemoveAll(tmp)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
			shared.err = fmt.Errorf("start %s: %w", exe, err)
			return
		}
		shared.ctx = ctx
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.ctx
}

// stopChromium stops the package's Chromium, if a test started it, and
// waits until it has exited.
func stopChromium() {
	if shared.stop != nil {
		shared.stop()
	}
}
