package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tailRecord is one line of `flightsink tail`.
type tailRecord struct {
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       *string         `json:"key"`
	Timestamp string          `json:"timestamp"`
	Headers   []tailHeader    `json:"headers,omitempty"`
	Value     json.RawMessage `json:"value"`
}

// tailHeader is a record header; a value that is not UTF-8 text is shown
// as base64 in ValueBase64 instead.
type tailHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

// tailOptions are tail's flags.
type tailOptions struct {
	brokers, registry string
	max               int
	idle, timeout     time.Duration
	uncommitted       bool
}

// parseTail parses tail's arguments: one TOPIC, flags before or after it.
func parseTail(args []string) (tailOptions, string, error) {
	var o tailOptions
	fl := flag.NewFlagSet("tail", flag.ContinueOnError)
	fl.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "comma-separated Kafka brokers")
	fl.IntVar(&o.max, "max", 0, "exit after this many records (0: no limit)")
	fl.DurationVar(&o.idle, "idle", 0, "exit after no record arrived for this long (0: follow until interrupted)")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Second, "fail when no broker answers, or the topic cannot be looked up, within this long")
	fl.BoolVar(&o.uncommitted, "read-uncommitted", false, "also show records of open and aborted transactions")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (http://user:password@host:8081): decode Avro and JSON Schema values it framed")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: flightsink tail [flags] TOPIC [flags]\n\n"+
			"Prints the topic's records from the beginning as JSON lines (read_committed), with their headers.\n"+
			"Exits 1 when no broker answers or the topic does not exist.")
		fl.PrintDefaults()
	}
	var topics []string
	for {
		if err := fl.Parse(args); err != nil {
			return o, "", err
		}
		if fl.NArg() == 0 {
			break
		}
		topics = append(topics, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(topics) != 1 {
		fl.Usage()
		return o, "", fmt.Errorf("tail: exactly one TOPIC is required, got %d (%s)", len(topics), strings.Join(topics, " "))
	}
	if o.timeout <= 0 {
		return o, "", errors.New("tail: --timeout must be positive")
	}
	return o, topics[0], nil
}

func tail(args []string) (err error) {
	o, topic, err := parseTail(args)
	if err != nil {
		return err
	}
	isolation := kgo.ReadCommitted()
	if o.uncommitted {
		isolation = kgo.ReadUncommitted()
	}
	brokers := strings.Split(o.brokers, ",")
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(isolation),
	)
	if err != nil {
		return fmt.Errorf("tail: --brokers: %w", err)
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := checkTopic(ctx, cl, brokers, topic, o.timeout); err != nil {
		return err
	}
	values := newValueDecoder(o.registry, os.Stderr)

	out := bufio.NewWriter(os.Stdout)
	defer func() {
		if ferr := out.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("writing records: %w", ferr)
		}
	}()
	enc := json.NewEncoder(out)
	seen := 0
	defer func() {
		if err == nil && seen == 0 {
			fmt.Fprintf(os.Stderr, "flightsink tail: no %s records in %s\n", isolationName(o.uncommitted), topic)
		}
	}()
	for {
		fctx := ctx
		var cancel context.CancelFunc = func() {}
		if o.idle > 0 {
			fctx, cancel = context.WithTimeout(ctx, o.idle)
		}
		fetches := cl.PollFetches(fctx)
		cancel()
		if ctx.Err() != nil || (o.idle > 0 && fctx.Err() != nil && fetches.NumRecords() == 0) {
			return nil
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return fmt.Errorf("tail %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		var werr error
		fetches.EachRecord(func(r *kgo.Record) {
			if werr != nil || (o.max > 0 && seen >= o.max) {
				return
			}
			werr = enc.Encode(toTailRecord(ctx, r, values))
			seen++
		})
		if werr != nil {
			return fmt.Errorf("writing records: %w", werr)
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("writing records: %w", err)
		}
		if o.max > 0 && seen >= o.max {
			return nil
		}
	}
}

func isolationName(uncommitted bool) string {
	if uncommitted {
		return "(committed or uncommitted)"
	}
	return "committed"
}

// checkTopic fails fast, as kcat does, when no broker answers or the topic
// does not exist: a consumer would otherwise wait in silence, and an empty
// output would read as an empty topic.
func checkTopic(ctx context.Context, cl *kgo.Client, brokers []string, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("tail: no broker of %v answered within %v (is Kafka running there? --brokers, --timeout): %w", brokers, timeout, err)
	}
	td, ok := topics[topic]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("tail: topic %q does not exist on %v", topic, brokers)
	case td.Err != nil:
		return fmt.Errorf("tail: looking up topic %q: %w", topic, td.Err)
	}
	return nil
}

// toTailRecord is the line shown for r.
func toTailRecord(ctx context.Context, r *kgo.Record, values *valueDecoder) tailRecord {
	line := tailRecord{Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), Value: values.decode(ctx, r)}
	if r.Key != nil {
		k := string(r.Key)
		line.Key = &k
	}
	for _, h := range r.Headers {
		th := tailHeader{Key: h.Key}
		if utf8.Valid(h.Value) {
			v := string(h.Value)
			th.Value = &v
		} else {
			th.ValueBase64 = base64.StdEncoding.EncodeToString(h.Value)
		}
		line.Headers = append(line.Headers, th)
	}
	return line
}

// jsonValue shows a JSON value as itself and anything else as a string.
func jsonValue(v []byte) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	if json.Valid(v) {
		return v
	}
	b, _ := json.Marshal(string(v))
	return b
}

// warnOnce writes each distinct message once.
type warnOnce struct {
	w    io.Writer
	seen map[string]bool
}

func (o *warnOnce) printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !o.seen[msg] {
		o.seen[msg] = true
		fmt.Fprintln(o.w, "flightsink tail:", msg)
	}
}
