// Command flightsink serves Arrow Flight DoPut streams into Kafka topics.
//
//	flightsink serve [--config config.yaml] [--listen HOST:PORT] [--brokers LIST] [--dev]
//	flightsink tail  --brokers LIST TOPIC
package main

import (
	"fmt"
	"os"
)

const usage = `flightsink: Arrow Flight DoPut → Kafka, exactly-once.

Usage:
  flightsink serve [flags]     run the Flight service (flightsink serve --help)
  flightsink tail [flags] TOPIC
                               print a topic's committed records as JSON lines
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
