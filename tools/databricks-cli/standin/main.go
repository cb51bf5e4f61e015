// Command standin serves the Databricks CLI's own workspace stand-in
// (github.com/databricks/cli/libs/testserver) on 127.0.0.1 so that the real
// CLI can validate and deploy the bundle in tests without a workspace.
//
// It prints "URL <base url>" on its first line of output, then serves until
// its standard input is closed or it receives SIGINT/SIGTERM, so a test
// process that dies takes the stand-in with it.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/databricks/cli/libs/testserver"
)

// standinT satisfies the test-harness interface the stand-in expects from
// *testing.T. Failures inside a handler are reported on stderr instead of
// failing a Go test; the handler still answers the request.
type standinT struct {
	ctx      context.Context
	cleanups []func()
	tempDir  string
}

func (t *standinT) Log(args ...any)                 { log.Print(args...) }
func (t *standinT) Logf(format string, args ...any) { log.Printf(format, args...) }
func (t *standinT) Error(args ...any)               { log.Print(append([]any{"ERROR: "}, args...)...) }
func (t *standinT) Errorf(format string, args ...any) {
	log.Printf("ERROR: "+format, args...)
}
func (t *standinT) Fatal(args ...any)                 { log.Fatal(args...) }
func (t *standinT) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (t *standinT) Skip(args ...any)                  { log.Print(args...) }
func (t *standinT) Skipf(format string, args ...any)  { log.Printf(format, args...) }
func (t *standinT) FailNow()                          { log.Fatal("FailNow") }
func (t *standinT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *standinT) Context() context.Context          { return t.ctx }
func (t *standinT) Setenv(key, value string)          { _ = os.Setenv(key, value) }
func (t *standinT) TempDir() string                   { return t.tempDir }
func (t *standinT) Helper()                           {}

func (t *standinT) runCleanups() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("standin: ")
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	tempDir, err := os.MkdirTemp("", "databricks-standin-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tempDir)

	t := &standinT{ctx: ctx, tempDir: tempDir}
	server := testserver.New(t)
	// Ours first: the router serves the first handler registered for a route.
	addRepairHandlers(server)
	testserver.AddDefaultHandlers(server)
	defer t.runCleanups()

	fmt.Printf("URL %s\n", server.URL)

	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	}
}
