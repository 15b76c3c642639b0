// Command goclient is contender A of the benchmark (and its exactly-once
// variant): the dataset's record batches, read into memory before the timed
// window, streamed to flightsink with the Go client (clients/go/fsclient), one
// stream, at-least-once or exactly-once with a checkpoint every N rows. With
// --streams N it is the many-streams workload instead (many.go): N
// concurrent streams sharing --rows.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
	client "github.com/flightsink/flightsink/clients/go/fsclient"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "", "dataset file (Arrow IPC) written by benchrun")
	addr := flag.String("addr", "", "flightsink Flight address host:port")
	topic := flag.String("topic", "", "topic to write")
	delivery := flag.String("delivery", "at_least_once", "at_least_once or exactly_once")
	every := flag.Int64("checkpoint-every", 0, "checkpoint every N rows (0: only the clean end)")
	soak := flag.Duration("for", 0, "stream the dataset over and over, in one stream, for this long (the soak run); 0: once")
	wait := flag.Bool("wait", false, "wait for each checkpoint's ack before sending more (Checkpoint); by default checkpoints are pipelined (MarkCheckpoint)")
	watch := flag.String("watch", "", "processes whose CPU to measure over the timed window: name=pid,...")
	name := flag.String("name", "A", "contender name in the result")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	streams := flag.Int("streams", 0, "the many-streams workload: this many concurrent streams sharing --rows (0: one stream sending the dataset)")
	rows := flag.Int64("rows", 0, "many streams: rows in all (0: the dataset's)")
	flag.Parse()
	if *data == "" || *addr == "" || *topic == "" {
		return fmt.Errorf("--data, --addr and --topic are required")
	}
	w, err := benchdata.ParseWatch(*watch)
	if err != nil {
		return err
	}
	meta, err := benchdata.ReadMeta(*data)
	if err != nil {
		return err
	}
	schema, batches, err := benchdata.Load(*data)
	if err != nil {
		return err
	}
	c, err := client.Dial(*addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	runtime.GC()
	if *streams > 0 {
		m := &manyRun{addr: *addr, topic: *topic, delivery: *delivery, meta: meta, schema: schema, batches: batches,
			streams: *streams, rows: *rows, every: *every}
		if m.rows <= 0 {
			m.rows = meta.Rows
		}
		res, err := m.run(ctx, w, *name)
		if err != nil {
			return err
		}
		res.Print()
		return nil
	}

	// ---- timed: open, stream every batch (checkpointing), clean close
	if err := w.Start(); err != nil {
		return err
	}
	cpu0 := benchdata.SelfCPU()
	t0 := time.Now()
	sw, err := c.Open(ctx, client.Descriptor{Topic: *topic, KeyField: meta.KeyField,
		TimestampField: meta.TimestampField, Delivery: *delivery}, schema)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	var sent, checkpoints int64
	var ckptWait, ckptMax time.Duration
	passes := 1
	if *soak > 0 {
		passes = math.MaxInt
	}
	for pass := 0; pass < passes && (pass == 0 || time.Since(t0) < *soak); pass++ {
		last := pass == passes-1 || *soak > 0 && time.Since(t0) >= *soak
		for _, rec := range batches {
			if err := sw.Write(rec); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			before := sent
			sent += rec.NumRows()
			if *every <= 0 || sent/(*every) == before/(*every) || last && sent%meta.Rows == 0 {
				continue
			}
			checkpoints++
			if !*wait {
				if _, err := sw.MarkCheckpoint(); err != nil {
					return fmt.Errorf("checkpoint after %d rows: %w", sent, err)
				}
				continue
			}
			c0 := time.Now()
			if _, err := sw.Checkpoint(ctx); err != nil {
				return fmt.Errorf("checkpoint after %d rows: %w", sent, err)
			}
			d := time.Since(c0)
			ckptWait += d
			ckptMax = max(ckptMax, d)
		}
	}
	done, err := sw.Close(ctx)
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	elapsed := time.Since(t0)
	cpu := benchdata.SelfCPU() - cpu0
	watched, err := w.Stop()
	if err != nil {
		return err
	}
	// ---- end of timed window
	if done.TotalRows != sent {
		return fmt.Errorf("server reports %d durable rows, sent %d", done.TotalRows, sent)
	}
	res := benchdata.Result{Contender: *name, Rows: done.TotalRows, ValueBytes: meta.ValueBytes, Seconds: elapsed.Seconds(),
		ClientCPU: cpu, Watched: watched, Checkpoint: checkpoints}
	if acked := sw.Acked().Checkpoint; !*wait && acked != checkpoints {
		return fmt.Errorf("the newest ack is for checkpoint %d, sent %d", acked, checkpoints)
	}
	if checkpoints > 0 {
		res.CheckpointWait = ckptWait.Seconds()
		res.CheckpointMax = ckptMax.Seconds()
	}
	res.Print()
	return nil
}
