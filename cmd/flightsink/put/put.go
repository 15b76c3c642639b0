// Package put is `flightsink put`: it uploads Parquet, Arrow IPC (file and
// stream), CSV and JSON-lines files, or stdin, through a flightsink server
// as one stream with the Go client (clients/go/fsclient), with pipelined
// checkpoints, resume of a named writer, and a progress bar on a terminal.
// docs/put.md is the user's guide.
package put

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flightsink/flightsink/clients/go/fsclient"
)

// Defaults of put's flags.
const (
	defaultCheckpointRows = 100_000
	defaultBatchRows      = 65_536
	defaultInferRows      = 1000
	defaultInflight       = 4
)

// options are put's flags other than the descriptor's.
type options struct {
	server, token, caFile string
	tls                   bool
	format                inputFormat
	schema                *arrow.Schema
	inferRows, batchRows  int
	checkpointRows        int64
	inflight              int64
	quiet                 bool
	progress              string // auto, always, never
	csvComma              rune
	desc                  fsclient.Descriptor
}

const usage = `usage: flightsink put --topic TOPIC [flags] FILE... (or - for stdin)

Uploads Parquet, Arrow IPC (file and stream), CSV and JSON-lines files through a flightsink
server, in order, as one stream: checkpoints every --checkpoint-rows rows, exactly-once by default.
With --writer-id a re-run of the same command after a failure or a crash skips exactly the rows
already committed (files only: stdin cannot be replayed). Exits 0 once every row is committed.
The format comes from the file name (.parquet, .arrow/.feather/.ipc, .arrows, .csv, .jsonl/.ndjson/.json),
else from the content, or --format. See docs/put.md.

`

// parse parses put's arguments: flags before or after the files.
func parse(args []string) (options, []string, error) {
	o := options{csvComma: ','}
	fl := flag.NewFlagSet("put", flag.ContinueOnError)
	fl.StringVar(&o.server, "server", "127.0.0.1:8815", "the flightsink server, `HOST:PORT`")
	fl.StringVar(&o.token, "token", os.Getenv("FLIGHTSINK_TOKEN"), "bearer token for a server with auth (default $FLIGHTSINK_TOKEN)")
	fl.BoolVar(&o.tls, "tls", false, "connect with TLS (the system's CAs unless --ca-file)")
	fl.StringVar(&o.caFile, "ca-file", "", "PEM file of the CA that signed the server's certificate (implies --tls)")
	format := fl.String("format", "", "input format for every FILE: "+formatsList+" (default: by name, else by content)")
	schema := fl.String("schema", "", "schema of CSV and JSON-lines input, `NAME:TYPE,...` or @FILE (default: inferred)")
	fl.IntVar(&o.inferRows, "infer-rows", defaultInferRows, "CSV and JSON-lines rows read to infer the schema")
	fl.IntVar(&o.batchRows, "batch-rows", defaultBatchRows, "rows per batch read from CSV, JSON-lines and Parquet input")
	fl.Int64Var(&o.checkpointRows, "checkpoint-rows", defaultCheckpointRows, "rows per checkpoint (a commit in exactly-once mode)")
	fl.Int64Var(&o.inflight, "checkpoints-in-flight", defaultInflight, "checkpoints sent but not yet acknowledged before put waits")
	delim := fl.String("csv-delimiter", ",", "CSV field delimiter (one character; \\t for tabs)")
	fl.BoolVar(&o.quiet, "quiet", false, "print nothing but errors (no progress, no summary)")
	fl.StringVar(&o.progress, "progress", "auto", "progress bar: auto (when stderr is a terminal), always, never")
	desc := descriptorValues{}
	desc.register(fl)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), usage)
		fl.PrintDefaults()
	}
	var files []string
	for {
		if err := fl.Parse(args); err != nil {
			return o, nil, err
		}
		if fl.NArg() == 0 {
			break
		}
		files = append(files, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(files) == 0 {
		fl.Usage()
		return o, nil, errors.New("put: name at least one FILE (- for stdin)")
	}
	var err error
	if o.desc, err = desc.descriptor(); err != nil {
		return o, nil, err
	}
	if o.format, err = parseInputFormat(*format); err != nil {
		return o, nil, err
	}
	if *schema != "" {
		if o.schema, err = parseSchemaFlag(*schema); err != nil {
			return o, nil, err
		}
	}
	if *delim == `\t` {
		*delim = "\t"
	}
	if utf8.RuneCountInString(*delim) != 1 {
		return o, nil, fmt.Errorf("put: --csv-delimiter %q is not one character", *delim)
	}
	o.csvComma, _ = utf8.DecodeRuneInString(*delim)
	switch {
	case o.checkpointRows < 1:
		return o, nil, fmt.Errorf("put: --checkpoint-rows %d: must be at least 1", o.checkpointRows)
	case o.inflight < 1:
		return o, nil, fmt.Errorf("put: --checkpoints-in-flight %d: must be at least 1", o.inflight)
	case o.batchRows < 1:
		return o, nil, fmt.Errorf("put: --batch-rows %d: must be at least 1", o.batchRows)
	case o.inferRows < 1:
		return o, nil, fmt.Errorf("put: --infer-rows %d: must be at least 1", o.inferRows)
	case o.progress != "auto" && o.progress != "always" && o.progress != "never":
		return o, nil, fmt.Errorf("put: --progress %q is not auto, always or never", o.progress)
	}
	stdins := 0
	for _, f := range files {
		if f == "-" {
			stdins++
		}
	}
	if stdins > 1 {
		return o, nil, errors.New("put: - (stdin) is named more than once; it can be read only once")
	}
	return o, files, nil
}

// Run is `flightsink put ARGS...`: it returns flag.ErrHelp after --help,
// and an error that says what failed, what is committed and what a re-run
// does (the caller prints it and exits 1).
func Run(args []string) error {
	o, files, err := parse(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	showBar := o.showProgress(os.Stderr)
	// The first signal ends the stream at the next batch (aborting what is
	// not committed); from then on a signal has its default effect: quit now.
	defer context.AfterFunc(ctx, func() {
		stop()
		nl := ""
		if showBar {
			nl = "\n" // below the bar
		}
		fmt.Fprintln(os.Stderr, nl+"put: interrupted: aborting the stream (what is not committed is discarded); interrupt again to quit at once")
	})()
	sources, schema, err := openSources(ctx, files, readOptions{format: o.format, schema: o.schema, inferRows: o.inferRows,
		batchRows: o.batchRows, csvComma: o.csvComma, mem: memory.DefaultAllocator, stdin: os.Stdin, stdinLabel: "stdin"})
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range sources {
			s.close()
		}
	}()
	dialOpts, err := o.dialOptions()
	if err != nil {
		return err
	}
	c, err := fsclient.Dial(o.server, dialOpts...)
	if err != nil {
		return fmt.Errorf("put: %s: %w", o.server, err)
	}
	defer c.Close()
	var bar progress = quietProgress{}
	if showBar {
		bar = newBarProgress(os.Stderr)
	}
	var summary io.Writer = os.Stderr
	if o.quiet {
		summary = io.Discard
	}
	u := &upload{o: o, sources: sources, schema: schema, bar: bar, summary: summary}
	return u.run(ctx, c)
}

// showProgress says whether put draws a progress bar on w.
func (o options) showProgress(w *os.File) bool {
	switch {
	case o.quiet || o.progress == "never":
		return false
	case o.progress == "always":
		return true
	}
	return term.IsTerminal(int(w.Fd()))
}

// dialOptions are the connection's TLS and credentials.
func (o options) dialOptions() ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	switch {
	case o.caFile != "":
		creds, err := credentials.NewClientTLSFromFile(o.caFile, "")
		if err != nil {
			return nil, fmt.Errorf("put: --ca-file: %w", err)
		}
		opts = append(opts, grpc.WithTransportCredentials(creds))
	case o.tls:
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})))
	}
	if o.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: o.tls || o.caFile != ""}))
	}
	return opts, nil
}

// bearer sends an auth.tokens token or a session token with every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// openSources opens every input before the stream starts, so that an
// unreadable file or a schema that differs fails before any row is sent.
// The stream's schema is the first input's, nullable where any input's is.
func openSources(ctx context.Context, files []string, o readOptions) ([]*source, *arrow.Schema, error) {
	var sources []*source
	fail := func(err error) ([]*source, *arrow.Schema, error) {
		for _, s := range sources {
			s.close()
		}
		return nil, nil, err
	}
	var first *source
	for _, f := range files {
		var want *arrow.Schema
		if first != nil {
			want = first.schema
		}
		s, err := openSource(ctx, f, o, want)
		if err != nil {
			return fail(err)
		}
		sources = append(sources, s)
		if first == nil {
			first = s
			continue
		}
		if err := compareSchemas(s.name, s.schema, first.name, first.schema); err != nil {
			return fail(err)
		}
	}
	fields := append([]arrow.Field(nil), first.schema.Fields()...)
	for _, s := range sources {
		for i, f := range s.schema.Fields() {
			fields[i].Nullable = fields[i].Nullable || f.Nullable
		}
	}
	return sources, arrow.NewSchema(fields, nil), nil
}

// describeSources names the inputs for messages: "a.csv, b.csv".
func describeSources(sources []*source) string {
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}
