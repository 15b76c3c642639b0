// Command flightsink serves Arrow Flight DoPut streams into Kafka topics.
//
//	flightsink serve [--config config.yaml] [--listen HOST:PORT] [--brokers LIST] [--dev]
//	flightsink tail  --brokers LIST TOPIC
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/flightsink/flightsink/internal/health"
)

const usage = `flightsink: Arrow Flight DoPut → Kafka, exactly-once.

Usage:
  flightsink serve [flags]     run the Flight service (flightsink serve --help)
  flightsink tail [flags] TOPIC
                               print a topic's committed records as JSON lines
  flightsink healthcheck [URL] exit 0 when URL (default http://127.0.0.1:9464/readyz) answers 200
                               (for container health checks: the image has no shell or curl)
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
	case "healthcheck":
		err = healthcheck(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "flightsink: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flightsink:", err)
		os.Exit(1)
	}
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
