package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"gonum.org/v1/plot/plotter"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
)

// The soak run (BENCH_SOAK_SECONDS > 0, `make bench-soak`): one flightsink
// server, one exactly-once stream with pipelined checkpoints every
// BENCH_CHECKPOINT_ROWS rows, the narrow dataset sent over and over for the
// whole duration. It samples the server's RSS and Go heap and its rows
// received, and writes bench/SOAK.md: whether the server's memory stays flat
// under sustained load.

const soakEvery = 10 * time.Second

// soakSample is one point of the soak's curves.
type soakSample struct {
	At      time.Duration
	RSSKB   int64
	HeapMB  float64 // go_memstats_heap_inuse_bytes
	Rows    float64 // flightsink_rows_received_total
	Records float64 // flightsink_records_produced_total (all topics)
}

func runSoak(ctx context.Context, c *config, adm *kadm.Client, machine machineInfo, runID, logDir string) error {
	d := "narrow"
	rows := min(c.rows[d], 1_000_000) // one pass; the client repeats it
	file, meta, err := benchdata.Ensure(filepath.Join(c.work, "data"), d, rows, c.batchRows)
	if err != nil {
		return err
	}
	topic := "bench-" + runID + "-soak"
	// Bounded on disk: at ~100 MB/s for 10 minutes, the broker keeps only
	// the newest segments (scripts/kafka.sh checks retention every 10 s).
	retention, segment := "268435456", "67108864"
	if err := createTopicWith(ctx, adm, topic, c.partitions, map[string]*string{"retention.bytes": &retention, "segment.bytes": &segment}); err != nil {
		return err
	}
	srv, err := startServer(ctx, c, filepath.Join(logDir, "server-soak.log"))
	if err != nil {
		return err
	}
	defer func() { _ = srv.stop() }() // a server that does not stop is killed; the run is over anyway

	samples := make(chan []soakSample, 1)
	quit := make(chan struct{})
	started := time.Now()
	go func() {
		var out []soakSample
		t := time.NewTicker(soakEvery)
		defer t.Stop()
		for {
			s := soakSample{At: time.Since(started)}
			s.RSSKB, _ = benchdata.ProcStatusKB(srv.cmd.Process.Pid, "VmRSS")
			if m, err := scrape(srv.metrics); err == nil {
				s.HeapMB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
				s.Rows = m["flightsink_rows_received_total"]
				s.Records = m[`flightsink_records_produced_total{topic="`+topic+`"}`]
			}
			out = append(out, s)
			select {
			case <-quit:
				samples <- out
				return
			case <-t.C:
			}
		}
	}()
	logf("soak: %v of the %s dataset (%d rows per pass) through one exactly-once stream, checkpoint every %d rows (pipelined)",
		c.soak, d, rows, c.ckptRows)
	args := []string{c.goclientBin, "--data", file, "--addr", srv.addr, "--delivery", "exactly_once",
		"--checkpoint-every", strconv.FormatInt(c.ckptRows, 10), "--for", c.soak.String(),
		"--topic", topic, "--watch", fmt.Sprintf("server=%d,broker=%d", srv.cmd.Process.Pid, c.brokerPID), "--name", "soak",
		"--timeout", (c.soak + 10*time.Minute).String()}
	c2 := *c
	c2.timeout = c.soak + 15*time.Minute
	res, err := runContender(ctx, &c2, args, filepath.Join(logDir, "client-soak.log"))
	close(quit)
	curve := <-samples
	peak, _ := benchdata.ProcStatusKB(srv.cmd.Process.Pid, "VmHWM")
	if serr := srv.stop(); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	var end int64
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	report := renderSoak(c, machine, meta, res, curve, peak, end, started)
	var rssPts, heapPts plotter.XYs
	for _, s := range curve {
		rssPts = append(rssPts, plotter.XY{X: s.At.Minutes(), Y: float64(s.RSSKB) / 1024})
		heapPts = append(heapPts, plotter.XY{X: s.At.Minutes(), Y: s.HeapMB})
	}
	soakChart := chart{file: "soak-rss.svg", title: fmt.Sprintf("server memory over the %v soak", c.soak), x: "minutes", y: "MB",
		lines: []series{{"RSS", rssPts}, {"Go heap in use", heapPts}}}
	if ok, err := soakChart.write(chartsDir(c.out)); err != nil {
		return err
	} else if ok {
		report += "\n## Chart\n\n![server memory over the soak](charts/soak-rss.svg)\n"
	}
	out := filepath.Join(filepath.Dir(c.out), "SOAK.md")
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		return err
	}
	logf("wrote %s", out)
	return nil
}

func createTopicWith(ctx context.Context, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) error {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(cctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return waitLeaders(ctx, adm, topic)
}

// slope is the least-squares slope of y over x.
func slope(x, y []float64) float64 {
	n := float64(len(x))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx, sy, sxx, sxy = sx+x[i], sy+y[i], sxx+x[i]*x[i], sxy+x[i]*y[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

func renderSoak(c *config, m machineInfo, meta benchdata.Meta, res *benchdata.Result, curve []soakSample, peakKB, endOffsets int64, started time.Time) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# flightsink soak run: server memory under sustained load\n\n")
	w("Generated by `make bench-soak` (bench/run.sh with BENCH_SOAK_SECONDS) — do not edit, the script rewrites this file. See bench/README.md.\n\n")
	w("- run: %s UTC, took %s, commit %s\n", started.UTC().Format("2006-01-02 15:04"), time.Since(started).Round(time.Second), m.Commit)
	w("- machine: %d CPUs (%s), %s memory, Linux %s; load average at start %s\n", m.CPUs, m.CPUModel, m.MemoryGB, m.Kernel, m.LoadStart)
	w("- software: %s; Kafka %s on %s (JVM options: `%s`)\n", m.Go, m.Kafka, m.Java, m.KafkaJVM)
	w("- what: one Go client (`clients/go`) → one flightsink server (default settings) → Kafka, one exactly-once stream for %v, a pipelined checkpoint (`MarkCheckpoint`) every %s rows; the narrow dataset (%s rows, %.0f B of JSON per row) sent over and over\n",
		c.soak, fmtInt(c.ckptRows), fmtInt(meta.Rows), float64(meta.ValueBytes)/float64(meta.Rows))
	w("- topic: %d partitions, retention.bytes 256 MiB per partition (the broker deletes old segments so the disk stays bounded)\n\n", c.partitions)

	w("## Result\n\n")
	secs := res.Seconds
	w("| rows | seconds | rows/s | checkpoints | server CPU s/M rows | broker CPU s/M rows | server peak RSS | topic end offsets |\n|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	w("| %s | %.0f | %s | %d | %.2f | %.2f | %.0f MB | %s |\n\n", fmtInt(res.Rows), secs, fmtInt(int64(float64(res.Rows)/secs)), res.Checkpoint,
		res.Watched["server"]/float64(res.Rows)*1e6, res.Watched["broker"]/float64(res.Rows)*1e6, float64(peakKB)/1024, fmtInt(endOffsets))
	w("The server reported every row durable (`done.total_rows` = rows sent); the topic's end offsets count the rows plus one commit marker per partition and transaction.\n\n")

	// Flatness: the slope of RSS over the run after the first minute (warm-up).
	var xs, rss, heap []float64
	for _, s := range curve {
		if s.At >= time.Minute && s.RSSKB > 0 {
			xs = append(xs, s.At.Minutes())
			rss = append(rss, float64(s.RSSKB)/1024)
			heap = append(heap, s.HeapMB)
		}
	}
	if len(xs) >= 2 {
		minR, maxR := math.Inf(1), math.Inf(-1)
		for _, v := range rss {
			minR, maxR = math.Min(minR, v), math.Max(maxR, v)
		}
		w("## Memory\n\n")
		w("After the first minute: RSS between %.0f and %.0f MB; least-squares slope %+.2f MB per minute (RSS) and %+.2f MB per minute (Go heap in use). A leak of one batch's buffers per checkpoint would grow by tens of MB per minute.\n\n",
			minR, maxR, slope(xs, rss), slope(xs, heap))
	}
	w("## Curve\n\nSampled every %v: the server's resident set (VmRSS), its Go heap in use (go_memstats_heap_inuse_bytes) and the rows it received in the interval before.\n\n", soakEvery)
	w("| time | RSS MB | Go heap MB | rows/s over the interval |\n|--:|--:|--:|--:|\n")
	for i, s := range curve {
		rate := "–"
		if i > 0 && s.Rows > 0 {
			dt := (s.At - curve[i-1].At).Seconds()
			rate = fmtInt(int64((s.Rows - curve[i-1].Rows) / dt))
		}
		w("| %s | %.0f | %.0f | %s |\n", s.At.Round(time.Second), float64(s.RSSKB)/1024, s.HeapMB, rate)
	}
	return b.String()
}
