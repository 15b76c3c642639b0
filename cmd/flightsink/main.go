// Command flightsink serves Arrow Flight DoPut streams into Kafka topics.
//
//	flightsink serve [--config config.yaml] [--listen HOST:PORT] [--brokers LIST] [--dev] [--check-config]
//	flightsink tail  [--brokers LIST] [--idle 2s] TOPIC
//	flightsink writers [flags] list|show ID|reset ID
//	flightsink transactions [flags] [list|abort ID]
//	flightsink put --topic TOPIC [flags] FILE...
//	flightsink version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/flightsink/flightsink/cmd/flightsink/health"
	"github.com/flightsink/flightsink/cmd/flightsink/put"
)

const usage = `flightsink: Arrow Flight DoPut → Kafka, exactly-once.

Usage:
  flightsink serve [flags]     run the Flight service (flightsink serve --help)
  flightsink tail [flags] TOPIC
                               print a topic's committed records as JSON lines
  flightsink put --topic TOPIC [flags] FILE...
                               upload Parquet, Arrow IPC, CSV or JSON-lines files (- for stdin)
  flightsink writers [flags] list|show ID|reset ID
                               a principal's named writers: what each committed; reset fences and forgets one
  flightsink transactions [flags] [list|abort ID]
                               the server's open transactions; abort a lingering one
  flightsink healthcheck [URL] exit 0 when URL (default http://127.0.0.1:9464/readyz) answers 200
                               (for container health checks: the image has no shell or curl)
  flightsink version           the version and build of this binary
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "tail":
		err = tail(os.Args[2:])
	case "put":
		err = put.Run(os.Args[2:])
	case "writers":
		err = writers(os.Args[2:])
	case "transactions":
		err = transactions(os.Args[2:])
	case "healthcheck":
		err = healthcheck(os.Args[2:])
	case "version", "--version":
		err = version(os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "flightsink: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) { // --help: the usage is printed, and asking is no failure
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flightsink:", err)
		os.Exit(1)
	}
}

// version prints the module version and the build's VCS stamp: what
// `go install ...@vX` or `make build` in a checkout recorded.
func version(w io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		_, err := fmt.Fprintln(w, "flightsink (no build information)")
		return err
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	line := "flightsink " + bi.Main.Version
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += " commit " + rev
		if settings["vcs.modified"] == "true" {
			line += " (modified)"
		}
		if t := settings["vcs.time"]; t != "" {
			line += " " + t
		}
	}
	line += fmt.Sprintf(" %s %s/%s", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	_, err := fmt.Fprintln(w, line)
	return err
}

func healthcheck(args []string) error {
	url := "http://127.0.0.1:9464/readyz"
	if len(args) > 0 {
		url = args[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return health.Probe(ctx, url)
}
