package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
	client "github.com/flightsink/flightsink/clients/go/fsclient"
)

// manyRun is the many-streams workload (--streams N): N concurrent
// streams from this one process, each on its own gRPC connection, each
// sending its share of --rows (whole record batches, starting at its own
// offset in the dataset and wrapping around), with a pipelined checkpoint
// every --checkpoint-every rows (at most two unacknowledged). It reports
// the aggregate rows/s, every stream's own rows/s (fairness) and the
// checkpoint acks' latency (marker sent → ack received).
type manyRun struct {
	addr, topic, delivery string
	meta                  benchdata.Meta
	schema                *arrow.Schema
	batches               []arrow.RecordBatch
	streams               int
	rows, every           int64
}

// streamResult is one stream's outcome.
type streamResult struct {
	rows, checkpoints int64
	took              time.Duration
	acks              []float64 // seconds from marker to ack
	err               error
}

func (m *manyRun) run(ctx context.Context, w *benchdata.Watch, name string) (benchdata.Result, error) {
	perStream := (m.rows + int64(m.streams) - 1) / int64(m.streams)
	clients := make([]*client.Client, m.streams)
	for i := range clients {
		c, err := client.Dial(m.addr)
		if err != nil {
			return benchdata.Result{}, err
		}
		defer c.Close()
		clients[i] = c
	}
	results := make([]streamResult, m.streams)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range m.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = m.stream(ctx, clients[i], i, perStream)
		}()
	}
	if err := w.Start(); err != nil {
		close(start)
		wg.Wait()
		return benchdata.Result{}, err
	}
	cpu0 := benchdata.SelfCPU()
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := benchdata.SelfCPU() - cpu0
	watched, err := w.Stop()
	if err != nil {
		return benchdata.Result{}, err
	}
	res := benchdata.Result{Contender: name, Seconds: elapsed.Seconds(), ClientCPU: cpu, Watched: watched,
		Streams: int64(m.streams), Concurrency: m.streams}
	var acks []float64
	for i, r := range results {
		if r.err != nil {
			return res, fmt.Errorf("stream %d of %d: %w", i+1, m.streams, r.err)
		}
		res.Rows += r.rows
		res.Checkpoint += r.checkpoints
		res.StreamRates = append(res.StreamRates, float64(r.rows)/r.took.Seconds())
		acks = append(acks, r.acks...)
	}
	res.ValueBytes = m.meta.ValueBytes * res.Rows / m.meta.Rows
	res.P50, res.P99, res.PMax = benchdata.Quantile(acks, 0.5), benchdata.Quantile(acks, 0.99), benchdata.Quantile(acks, 1)
	return res, nil
}

// stream sends quota rows (rounded up to whole batches) as stream i.
func (m *manyRun) stream(ctx context.Context, c *client.Client, i int, quota int64) streamResult {
	var r streamResult
	t0 := time.Now()
	sw, err := c.Open(ctx, client.Descriptor{Topic: m.topic, KeyField: m.meta.KeyField,
		TimestampField: m.meta.TimestampField, Delivery: m.delivery}, m.schema)
	if err != nil {
		r.err = fmt.Errorf("open: %w", err)
		return r
	}
	type mark struct {
		n  int64
		at time.Time
	}
	marks := make(chan mark, 1) // with the one being waited for: at most two unacknowledged
	waited := make(chan error, 1)
	go func() {
		var err error
		for mk := range marks {
			if err == nil {
				if _, err = sw.WaitCheckpoint(ctx, mk.n); err == nil {
					r.acks = append(r.acks, time.Since(mk.at).Seconds())
				}
			}
		}
		waited <- err
	}()
	first := i * len(m.batches) / m.streams
	for k := 0; r.rows < quota; k++ {
		rec := m.batches[(first+k)%len(m.batches)]
		if err = sw.Write(rec); err != nil {
			err = fmt.Errorf("write: %w", err)
			break
		}
		before := r.rows
		r.rows += rec.NumRows()
		if m.every > 0 && r.rows/m.every != before/m.every && r.rows < quota {
			n, merr := sw.MarkCheckpoint()
			if merr != nil {
				err = fmt.Errorf("checkpoint after %d rows: %w", r.rows, merr)
				break
			}
			r.checkpoints++
			marks <- mark{n, time.Now()}
		}
	}
	close(marks)
	if werr := <-waited; err == nil && werr != nil {
		err = fmt.Errorf("checkpoint ack: %w", werr)
	}
	if err != nil {
		_ = sw.Abort(ctx, err.Error())
		r.err = err
		return r
	}
	done, err := sw.Close(ctx)
	r.took = time.Since(t0)
	switch {
	case err != nil:
		r.err = fmt.Errorf("close: %w", err)
	case done.TotalRows != r.rows:
		r.err = fmt.Errorf("server reports %d durable rows, sent %d", done.TotalRows, r.rows)
	}
	return r
}
