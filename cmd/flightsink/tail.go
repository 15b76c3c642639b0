package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// tailRecord is one line of `flightsink tail`.
type tailRecord struct {
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       *string         `json:"key"`
	Timestamp string          `json:"timestamp"`
	Value     json.RawMessage `json:"value"`
}

func tail(args []string) (err error) {
	fl := flag.NewFlagSet("tail", flag.ContinueOnError)
	brokers := fl.String("brokers", "127.0.0.1:9092", "comma-separated Kafka brokers")
	max := fl.Int("max", 0, "exit after this many records (0: no limit)")
	idle := fl.Duration("idle", 0, "exit after no record arrived for this long (0: follow until interrupted)")
	uncommitted := fl.Bool("read-uncommitted", false, "also show records of open and aborted transactions")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: flightsink tail [flags] TOPIC\n\nPrints the topic's records from the beginning as JSON lines, read_committed.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return errors.New("tail: exactly one TOPIC is required")
	}
	isolation := kgo.ReadCommitted()
	if *uncommitted {
		isolation = kgo.ReadUncommitted()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ConsumeTopics(fl.Arg(0)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(isolation),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := bufio.NewWriter(os.Stdout)
	defer func() {
		if ferr := out.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("writing records: %w", ferr)
		}
	}()
	enc := json.NewEncoder(out)
	seen := 0
	for {
		fctx := ctx
		var cancel context.CancelFunc = func() {}
		if *idle > 0 {
			fctx, cancel = context.WithTimeout(ctx, *idle)
		}
		fetches := cl.PollFetches(fctx)
		cancel()
		if ctx.Err() != nil || (*idle > 0 && fctx.Err() != nil && fetches.NumRecords() == 0) {
			return nil
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return fmt.Errorf("tail %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		var werr error
		fetches.EachRecord(func(r *kgo.Record) {
			if werr != nil || (*max > 0 && seen >= *max) {
				return
			}
			line := tailRecord{Partition: r.Partition, Offset: r.Offset,
				Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), Value: jsonValue(r.Value)}
			if r.Key != nil {
				k := string(r.Key)
				line.Key = &k
			}
			werr = enc.Encode(line)
			seen++
		})
		if werr != nil {
			return werr
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("writing records: %w", err)
		}
		if *max > 0 && seen >= *max {
			return nil
		}
	}
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
