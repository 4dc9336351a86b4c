//go:build unix

package pgtest

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// A test package that runs many short tests against PostgreSQL shares one
// cluster: initdb and a start cost about two seconds, a database a few
// milliseconds. Its TestMain calls Main, which removes the cluster when
// the tests are done; each test takes a database of its own with
// SharedDB.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//	dsn := pgtest.SharedDB(t) // a new, empty database
var shared struct {
	once     sync.Once
	c        *Cluster
	err      string
	cleanups []func()
	dbs      atomic.Int64
}

// Main runs the package's tests and then removes the shared cluster, if
// one was started.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup removes the shared cluster, if one was started: for a TestMain
// that does more than Main.
func Cleanup() {
	for i := len(shared.cleanups) - 1; i >= 0; i-- {
		shared.cleanups[i]()
	}
	shared.cleanups = nil
}

// SharedDB creates a database in the package's shared cluster (started
// on first use) and returns its DSN. Without PostgreSQL the test skips
// with one line (fails in CI), as Start does.
func SharedDB(tb testing.TB) string {
	tb.Helper()
	if binDir() == "" {
		Start(tb) // skips, or fails in CI, with Start's message
	}
	shared.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				shared.err = fmt.Sprint(r)
			}
		}()
		shared.c = Start(&mainTB{})
	})
	if shared.err != "" {
		tb.Fatalf("pgtest: shared cluster: %s", shared.err)
	}
	return shared.c.CreateDB(tb, "t"+strconv.FormatInt(shared.dbs.Add(1), 10))
}

// mainTB stands for the test binary while the shared cluster is started
// and removed: its failures panic (SharedDB turns them into the calling
// test's failure) and its cleanups run in Main.
type mainTB struct{ testing.TB }

func (*mainTB) Helper()                        {}
func (*mainTB) Failed() bool                   { return false }
func (*mainTB) Logf(format string, a ...any)   { fmt.Fprintf(os.Stderr, format+"\n", a...) }
func (*mainTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (*mainTB) Cleanup(f func())               { shared.cleanups = append(shared.cleanups, f) }
func (*mainTB) Errorf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
