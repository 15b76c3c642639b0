package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
)

// The many-streams workload (BENCH_WORKLOADS has "many"): 1, 4, 16, 64
// concurrent large streams from one Go client process (bench/cmd/goclient
// --streams N) into one topic, BENCH_MANY_ROWS narrow rows in all, shared
// equally; a fresh server for each count, its kafka.max_buffered_bytes set
// to BENCH_MANY_MAX_BUFFERED_BYTES so 64 streams fit the machine. Each count
// first runs a warm-up pass of the same streams (BENCH_MANY_WARMUP_ROWS) on
// its server: a fresh process pays once for the memory its streams touch
// (64 × the buffers: page faults, the heap's growth), which a running
// server has paid; the first pass's server CPU is reported as "cold".

// manyConfig is the many-streams workload's part of the configuration.
type manyConfig struct {
	counts      []int  // BENCH_MANY_STREAMS
	rows        int64  // BENCH_MANY_ROWS: rows in all, per count
	ckptRows    int64  // BENCH_MANY_CHECKPOINT_ROWS: per stream
	maxBuffered int64  // BENCH_MANY_MAX_BUFFERED_BYTES: the servers' kafka.max_buffered_bytes
	warmupRows  int64  // BENCH_MANY_WARMUP_ROWS: the warm-up pass's rows in all, 0 for none
	delivery    string // BENCH_MANY_DELIVERY
}

func loadMany(c *config, get func(string, int64) int64) error {
	defRows, defCkpt := int64(6_400_000), int64(20_000)
	if c.quick {
		defRows, defCkpt = 1_280_000, 10_000
	}
	c.many = manyConfig{rows: get("BENCH_MANY_ROWS", defRows), ckptRows: get("BENCH_MANY_CHECKPOINT_ROWS", defCkpt),
		maxBuffered: get("BENCH_MANY_MAX_BUFFERED_BYTES", 16<<20), delivery: envStr("BENCH_MANY_DELIVERY", "exactly_once")}
	c.many.warmupRows = get("BENCH_MANY_WARMUP_ROWS", c.many.rows)
	for _, f := range strings.Split(envStr("BENCH_MANY_STREAMS", "1,4,16,64"), ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("BENCH_MANY_STREAMS: %q is not a stream count (want e.g. 1,4,16,64)", f)
		}
		c.many.counts = append(c.many.counts, n)
	}
	if c.many.rows < 1 || c.many.maxBuffered < 1 {
		return fmt.Errorf("BENCH_MANY_ROWS and BENCH_MANY_MAX_BUFFERED_BYTES must be at least 1")
	}
	if d := c.many.delivery; d != "exactly_once" && d != "at_least_once" {
		return fmt.Errorf("BENCH_MANY_DELIVERY: unknown delivery %q (want exactly_once or at_least_once)", d)
	}
	return nil
}

// manyOutcome is one stream count's run.
type manyOutcome struct {
	Streams   int              `json:"streams"`
	Topic     string           `json:"topic"`
	Result    benchdata.Result `json:"result"`
	RSSPeakKB int64            `json:"server_rss_peak_kb,omitempty"`
	// ColdServerPerM is the warm-up pass's server CPU s/M rows (0: none).
	ColdServerPerM float64 `json:"cold_server_cpu_s_per_m,omitempty"`
	Profile   string           `json:"server_profile,omitempty"` // top of `perf report` (BENCH_PROFILE=1)
	Verified  string           `json:"verified,omitempty"`
	Err       string           `json:"error,omitempty"`
}

func (o *manyOutcome) ok() bool { return o != nil && o.Err == "" }

func (o *manyOutcome) rate() float64 { return float64(o.Result.Rows) / o.Result.Seconds }

// serverPerM is the server's CPU seconds per million rows.
func (o *manyOutcome) serverPerM() float64 {
	return o.Result.Watched["server"] / float64(o.Result.Rows) * 1e6
}

// fairness is the slowest stream's rows/s ÷ the mean of every stream's.
func (o *manyOutcome) fairness() float64 {
	rs := o.Result.StreamRates
	if len(rs) == 0 {
		return 0
	}
	slowest, sum := math.Inf(1), 0.0
	for _, r := range rs {
		slowest, sum = math.Min(slowest, r), sum+r
	}
	return slowest / (sum / float64(len(rs)))
}

func runMany(ctx context.Context, c *config, adm *kadm.Client, runID, logDir string) ([]*manyOutcome, error) {
	file, meta, err := benchdata.Ensure(filepath.Join(c.work, "data"), "narrow", min(c.many.rows, 1_000_000), c.batchRows)
	if err != nil {
		return nil, fmt.Errorf("many-streams dataset: %w", err)
	}
	var out []*manyOutcome
	for _, n := range c.many.counts {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		o := runManyOne(ctx, c, adm, runID, logDir, file, meta, n)
		if o.ok() {
			r := o.Result
			logf("many ×%d: %d rows in %.2fs = %.0f rows/s; server CPU %.2f s/M rows; fairness %.2f; ack p99 %.0f ms; %s",
				n, r.Rows, r.Seconds, o.rate(), o.serverPerM(), o.fairness(), 1000*r.P99, o.Verified)
		} else {
			logf("many ×%d: FAILED: %s", n, o.Err)
		}
		out = append(out, o)
		pause(ctx, c.settle)
	}
	return out, nil
}

func runManyOne(ctx context.Context, c *config, adm *kadm.Client, runID, logDir, file string, meta benchdata.Meta, n int) *manyOutcome {
	name := fmt.Sprintf("many-%d", n)
	o := &manyOutcome{Streams: n, Topic: fmt.Sprintf("bench-%s-%s", runID, name)}
	fail := func(err error) *manyOutcome { o.Err = err.Error(); return o }
	if err := createTopic(ctx, adm, o.Topic, c.partitions); err != nil {
		return fail(err)
	}
	sc := *c
	sc.serverEnv = []string{fmt.Sprintf("FLIGHTSINK_KAFKA_MAX_BUFFERED_BYTES=%d", c.many.maxBuffered)}
	srv, err := startServer(ctx, &sc, filepath.Join(logDir, "server-"+name+".log"))
	if err != nil {
		return fail(err)
	}
	defer func() { _ = srv.stop() }()
	if c.many.warmupRows > 0 {
		warm := o.Topic + "-warmup"
		if err := createTopic(ctx, adm, warm, c.partitions); err != nil {
			return fail(err)
		}
		logf("many ×%d: warm-up pass (%d rows in all, topic %s)", n, c.many.warmupRows, warm)
		res, err := runContender(ctx, c, manyArgs(c, file, srv, n, c.many.warmupRows, warm, name+"-warmup"),
			filepath.Join(logDir, "client-"+name+"-warmup.log"))
		if err != nil {
			return fail(fmt.Errorf("warm-up pass: %w", err))
		}
		if _, err := verify(ctx, c, adm, warm, res.Rows, c.many.delivery == "exactly_once", res.Checkpoint+int64(n)-1); err != nil {
			return fail(fmt.Errorf("warm-up pass: verification: %w", err))
		}
		o.ColdServerPerM = res.Watched["server"] / float64(res.Rows) * 1e6
		pause(ctx, c.settle)
	}
	var prof *profiler
	if c.profile {
		if prof, err = startPerf(srv.cmd.Process.Pid, filepath.Join(logDir, "perf-"+name+".data")); err != nil {
			return fail(err)
		}
		defer prof.stop()
	}
	logf("many ×%d: running (%d rows in all, topic %s)", n, c.many.rows, o.Topic)
	res, err := runContender(ctx, c, manyArgs(c, file, srv, n, c.many.rows, o.Topic, name), filepath.Join(logDir, "client-"+name+".log"))
	if prof != nil {
		o.Profile = prof.stop()
	}
	o.RSSPeakKB, _ = benchdata.ProcStatusKB(srv.cmd.Process.Pid, "VmHWM")
	if serr := srv.stop(); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return fail(err)
	}
	o.Result = *res
	if res.Rows < c.many.rows || len(res.StreamRates) != n {
		return fail(fmt.Errorf("contender reports %d rows from %d streams, expected at least %d from %d", res.Rows, len(res.StreamRates), c.many.rows, n))
	}
	// one commit per checkpoint and per stream's end
	v, err := verify(ctx, c, adm, o.Topic, res.Rows, c.many.delivery == "exactly_once", res.Checkpoint+int64(n)-1)
	if err != nil {
		return fail(fmt.Errorf("verification: %w", err))
	}
	o.Verified = v
	return o
}

// manyArgs is the goclient command line of n streams writing rows in all
// to topic.
func manyArgs(c *config, file string, srv *server, n int, rows int64, topic, name string) []string {
	return []string{c.goclientBin, "--data", file, "--addr", srv.addr, "--delivery", c.many.delivery,
		"--streams", strconv.Itoa(n), "--rows", strconv.FormatInt(rows, 10),
		"--checkpoint-every", strconv.FormatInt(c.many.ckptRows, 10), "--topic", topic,
		"--watch", fmt.Sprintf("server=%d,broker=%d", srv.cmd.Process.Pid, c.brokerPID), "--name", name}
}

// renderMany is the many-streams section of RESULTS.md.
func renderMany(c *config, outs []*manyOutcome) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Many streams\n\n")
	w("N concurrent %s streams from one Go client process (`goclient --streams N`, a gRPC connection per stream) into one %d-partition topic, %s narrow rows in all, shared equally (whole batches of %s rows), a pipelined checkpoint every %s rows per stream (at most two unacknowledged); a fresh server per N with `kafka.max_buffered_bytes` = %s (BENCH_MANY_MAX_BUFFERED_BYTES; the default 64 MiB × 64 streams could buffer 4 GiB, so it is smaller here, and 64 streams buffer at most %s). "+
		"Fairness = the slowest stream's rows/s ÷ the mean stream's (each over its own open → done); ack = marker sent → ack received, every checkpoint of every stream.\n\n",
		c.many.delivery, c.partitions, fmtInt(c.many.rows), fmtInt(int64(c.batchRows)), fmtInt(c.many.ckptRows), mib(c.many.maxBuffered), mib(64*c.many.maxBuffered))
	if c.many.warmupRows > 0 {
		w("Each count first runs a warm-up pass of the same streams (%s rows in all, BENCH_MANY_WARMUP_ROWS, verified too) on its fresh server, and the table shows the second pass, as a running server meets them: a fresh process first touches the memory its streams use (N × the buffers: page faults, the heap's growth) once. \"cold\" is the first pass's server CPU.\n\n", fmtInt(c.many.warmupRows))
	}
	w("| streams | rows | seconds | rows/s | server CPU s/M rows | ÷ 1 stream's | cold: server CPU s/M rows | broker CPU s/M rows | fairness | checkpoints | ack p50 ms | ack p99 ms | server peak RSS | verified |\n")
	w("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	var base float64
	for _, o := range outs {
		if o.ok() && o.Streams == 1 {
			base = o.serverPerM()
		}
	}
	flat, fair := true, true
	for _, o := range outs {
		if !o.ok() {
			w("| %d | FAILED | | | | | | | | | | | | %s |\n", o.Streams, strings.ReplaceAll(o.Err, "|", "\\|"))
			flat, fair = false, false
			continue
		}
		r := o.Result
		rel := "–"
		if base > 0 {
			v := o.serverPerM() / base
			rel = fmt.Sprintf("%.2f", v)
			flat = flat && v <= 1.10 && v >= 0.90
		}
		fair = fair && o.fairness() >= 0.5
		p50, p99 := "–", "–"
		if r.Checkpoint > 0 {
			p50, p99 = fmt.Sprintf("%.0f", 1000*r.P50), fmt.Sprintf("%.0f", 1000*r.P99)
		}
		cold := "–"
		if o.ColdServerPerM > 0 {
			cold = fmt.Sprintf("%.2f", o.ColdServerPerM)
		}
		w("| %d | %s | %.2f | %s | %.2f | %s | %s | %.2f | %.2f | %d | %s | %s | %.0f MB | %s |\n", o.Streams, fmtInt(r.Rows), r.Seconds,
			fmtInt(int64(o.rate())), o.serverPerM(), rel, cold, r.Watched["broker"]/float64(r.Rows)*1e6, o.fairness(), r.Checkpoint,
			p50, p99, float64(o.RSSPeakKB)/1024, o.Verified)
	}
	w("\nGoals (issue 18): server CPU per row within 10%% of one stream's at every count: %s; the slowest stream at least half the mean rate: %s.\n",
		metText(flat && base > 0, "flat"), metText(fair && len(outs) > 0, "≥ 0.50"))
	for _, o := range outs {
		if o.ok() && o.Profile != "" {
			w("\nServer profile, %d streams (BENCH_PROFILE=1, `perf record -F 999 -g`):\n\n```\n%s\n```\n", o.Streams, o.Profile)
		}
	}
	return b.String()
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
