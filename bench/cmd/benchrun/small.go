package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
)

// The small-streams workload (BENCH_WORKLOADS has "small"): many short
// streams of one record batch of BENCH_SMALL_ROWS (100) rows each, as an
// application server flushing a batch or an ETL task per file writes them,
// from the pyarrow client (bench/pyclient.py --mode S), one at a time and
// BENCH_SMALL_CONCURRENCY (16) at a time, in both delivery modes; against
// confluent-kafka doing the same work in the same run (a transactional
// producer's begin / produce / commit; an idempotent producer's produce +
// flush). Each stream is timed from opening to `done` (native: to the end of
// commit or flush).

// smallConfig is the small-streams workload's part of the configuration.
type smallConfig struct {
	streams    int64    // BENCH_SMALL_STREAMS: streams of a sequential scenario
	concurrent int64    // BENCH_SMALL_CONCURRENT_STREAMS: streams of a concurrent scenario
	conc       int      // BENCH_SMALL_CONCURRENCY
	rows       int      // BENCH_SMALL_ROWS: rows per stream
	deliveries []string // BENCH_SMALL_DELIVERY
	// baseline is BENCH_BASELINE_SERVER_BIN: another flightsink binary
	// (say, built from main) run as a third target, for before/after
	// figures from the same run.
	baseline string
}

func loadSmall(c *config, get func(string, int64) int64) error {
	defSeq, defConc := int64(400), int64(1600)
	if c.quick {
		defSeq, defConc = 100, 400
	}
	c.small = smallConfig{
		streams:    get("BENCH_SMALL_STREAMS", defSeq),
		concurrent: get("BENCH_SMALL_CONCURRENT_STREAMS", defConc),
		conc:       int(get("BENCH_SMALL_CONCURRENCY", 16)),
		rows:       int(get("BENCH_SMALL_ROWS", 100)),
		deliveries: strings.Split(envStr("BENCH_SMALL_DELIVERY", "exactly_once,at_least_once"), ","),
		baseline:   os.Getenv("BENCH_BASELINE_SERVER_BIN"),
	}
	s := c.small
	if s.streams < 1 || s.concurrent < 1 || s.conc < 1 || s.rows < 1 {
		return fmt.Errorf("BENCH_SMALL_STREAMS, BENCH_SMALL_CONCURRENT_STREAMS, BENCH_SMALL_CONCURRENCY and BENCH_SMALL_ROWS must be at least 1")
	}
	for _, d := range s.deliveries {
		if d != "exactly_once" && d != "at_least_once" {
			return fmt.Errorf("BENCH_SMALL_DELIVERY: unknown delivery %q (want exactly_once and/or at_least_once)", d)
		}
	}
	return nil
}

// smallOutcome is one scenario's run by one target.
type smallOutcome struct {
	Delivery string           `json:"delivery"`
	Conc     int              `json:"concurrency"`
	Target   string           `json:"target"` // flightsink, baseline or native
	Topic    string           `json:"topic"`
	Result   benchdata.Result `json:"result"`
	Verified string           `json:"verified,omitempty"`
	Err      string           `json:"error,omitempty"`
}

func (o *smallOutcome) ok() bool { return o != nil && o.Err == "" }

func (o *smallOutcome) streamsPerS() float64 { return float64(o.Result.Streams) / o.Result.Seconds }

// runSmall runs every small-streams scenario: for each delivery mode,
// sequential then concurrent, flightsink then the native producer.
func runSmall(ctx context.Context, c *config, adm *kadm.Client, runID, logDir string) ([]*smallOutcome, error) {
	rows := int64(c.small.rows) * 1000 // 1,000 distinct batches, reused round-robin
	file, _, err := benchdata.Ensure(filepath.Join(c.work, "data"), "narrow", rows, c.small.rows)
	if err != nil {
		return nil, fmt.Errorf("small-streams dataset: %w", err)
	}
	var out []*smallOutcome
	for _, d := range c.small.deliveries {
		for _, conc := range []int{1, c.small.conc} {
			targets := []string{"flightsink", "native"}
			if c.small.baseline != "" {
				targets = []string{"flightsink", "baseline", "native"}
			}
			for _, target := range targets {
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				o := runSmallOne(ctx, c, adm, runID, logDir, file, d, conc, target)
				if o.ok() {
					r := o.Result
					logf("small %s ×%d %s: %d streams in %.2fs = %.1f streams/s, p50 %.1f ms, p99 %.1f ms; %s", d, conc, target,
						r.Streams, r.Seconds, o.streamsPerS(), 1000*r.P50, 1000*r.P99, o.Verified)
				} else {
					logf("small %s ×%d %s: FAILED: %s", d, conc, target, o.Err)
				}
				out = append(out, o)
				pause(ctx, c.settle)
			}
		}
	}
	return out, nil
}

func runSmallOne(ctx context.Context, c *config, adm *kadm.Client, runID, logDir, file, delivery string, conc int, target string) *smallOutcome {
	short := map[string]string{"exactly_once": "eos", "at_least_once": "alo"}[delivery]
	name := fmt.Sprintf("small-%s-%d-%s", short, conc, target)
	o := &smallOutcome{Delivery: delivery, Conc: conc, Target: target, Topic: fmt.Sprintf("bench-%s-%s", runID, name)}
	fail := func(err error) *smallOutcome { o.Err = err.Error(); return o }
	if err := createTopic(ctx, adm, o.Topic, c.partitions); err != nil {
		return fail(err)
	}
	streams := c.small.streams
	if conc > 1 {
		streams = c.small.concurrent
	}
	pyTarget := target
	if target == "baseline" {
		pyTarget = "flightsink"
	}
	args := []string{c.python, c.pyclient, "--mode", "S", "--target", pyTarget, "--delivery", delivery, "--data", file,
		"--streams", strconv.FormatInt(streams, 10), "--concurrency", strconv.Itoa(conc),
		"--rows-per-stream", strconv.Itoa(c.small.rows), "--timeout", strconv.Itoa(int(c.timeout.Seconds())),
		"--compression", c.compression, "--topic", o.Topic, "--name", name}
	watch := fmt.Sprintf("broker=%d", c.brokerPID)
	var srv *server
	if target != "native" {
		sc := *c
		if target == "baseline" {
			sc.serverBin = c.small.baseline
		}
		var err error
		if srv, err = startServer(ctx, &sc, filepath.Join(logDir, "server-"+name+".log")); err != nil {
			return fail(err)
		}
		defer func() { _ = srv.stop() }()
		watch = fmt.Sprintf("server=%d,%s", srv.cmd.Process.Pid, watch)
		args = append(args, "--addr", srv.addr)
	} else {
		args = append(args, "--brokers", c.brokers)
	}
	args = append(args, "--watch", watch)
	logf("small %s ×%d %s: running (%d streams of %d rows, topic %s)", delivery, conc, target, streams, c.small.rows, o.Topic)
	res, err := runContender(ctx, c, args, filepath.Join(logDir, "client-"+name+".log"))
	if srv != nil {
		if serr := srv.stop(); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return fail(err)
	}
	o.Result = *res
	want := streams * int64(c.small.rows)
	if res.Rows != want || res.Streams != streams {
		return fail(fmt.Errorf("contender reports %d rows in %d streams, expected %d in %d", res.Rows, res.Streams, want, streams))
	}
	// every stream is one transaction: at most one marker per partition each
	v, err := verify(ctx, c, adm, o.Topic, want, delivery == "exactly_once", streams-1)
	if err != nil {
		return fail(fmt.Errorf("verification: %w", err))
	}
	o.Verified = v
	return o
}

// renderSmall is the small-streams section of RESULTS.md.
func renderSmall(c *config, outs []*smallOutcome) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Small streams\n\n")
	w("Many short streams of one record batch of %d narrow rows each, from the pyarrow client (`bench/pyclient.py --mode S`), into a %d-partition topic per scenario; "+
		"one at a time (%s streams) and %d at a time (threads, %s streams). Each stream is timed from opening (`do_put`) to the server's `done`; flightsink streams read `ready` before writing, as the README's example does. "+
		"native: confluent-kafka doing the same work, one producer per thread created before the timed window: exactly_once = `begin_transaction`, `to_pylist` → `json.dumps` → `produce` per row, `commit_transaction`; "+
		"at_least_once = an idempotent producer, the same produce, `flush`. Server CPU is the flightsink process's, per stream.\n\n",
		c.small.rows, c.partitions, fmtInt(c.small.streams), c.small.conc, fmtInt(c.small.concurrent))
	w("| delivery | at a time | target | streams | seconds | streams/s | p50 ms | p99 ms | max ms | client CPU ms/stream | server CPU ms/stream | broker CPU ms/stream | verified |\n")
	w("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, o := range outs {
		if !o.ok() {
			w("| %s | %d | %s | FAILED | | | | | | | | | %s |\n", o.Delivery, o.Conc, o.Target, strings.ReplaceAll(o.Err, "|", "\\|"))
			continue
		}
		r := o.Result
		per := func(s float64) float64 { return 1000 * s / float64(r.Streams) }
		server := "–"
		if o.Target != "native" {
			server = fmt.Sprintf("%.2f", per(r.Watched["server"]))
		}
		w("| %s | %d | %s | %s | %.2f | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %.2f | %s |\n", o.Delivery, o.Conc, o.Target,
			fmtInt(r.Streams), r.Seconds, o.streamsPerS(), 1000*r.P50, 1000*r.P99, 1000*r.PMax, per(r.ClientCPU), server,
			per(r.Watched["broker"]), o.Verified)
	}
	w("\nflightsink ÷ native, same scenario, same run (streams/s: higher is better; p50: lower is better). Goals (issue 18): sequential streams/s ≥ 1 in both modes; at-least-once sequential p50 ≤ 2× native.")
	if c.small.baseline != "" {
		w(" \"vs baseline\": flightsink ÷ the baseline server (`%s`, BENCH_BASELINE_SERVER_BIN), streams/s and p50.", c.small.baseline)
	}
	w("\n\n| delivery | at a time | streams/s ratio | goal | p50 ratio | goal | p99 ratio |%s\n|---|--:|--:|---|--:|---|--:|%s\n",
		map[bool]string{true: " vs baseline: streams/s | vs baseline: p50 |"}[c.small.baseline != ""], map[bool]string{true: "--:|--:|"}[c.small.baseline != ""])
	find := func(d string, conc int, target string) *smallOutcome {
		for _, o := range outs {
			if o.Delivery == d && o.Conc == conc && o.Target == target && o.ok() {
				return o
			}
		}
		return nil
	}
	for _, d := range c.small.deliveries {
		for _, conc := range []int{1, c.small.conc} {
			f, n := find(d, conc, "flightsink"), find(d, conc, "native")
			if f == nil || n == nil {
				w("| %s | %d | n/a | | n/a | | n/a |\n", d, conc)
				continue
			}
			rate, p50 := f.streamsPerS()/n.streamsPerS(), f.Result.P50/n.Result.P50
			rateGoal, p50Goal := "(info)", "(info)"
			if conc == 1 {
				rateGoal = metText(rate >= 1, "≥ 1.00")
				if d == "at_least_once" {
					p50Goal = metText(p50 <= 2, "≤ 2.00")
				}
			}
			w("| %s | %d | %.2f | %s | %.2f | %s | %.2f |", d, conc, rate, rateGoal, p50, p50Goal, f.Result.P99/n.Result.P99)
			if c.small.baseline != "" {
				if bl := find(d, conc, "baseline"); bl != nil {
					w(" %.2f | %.2f |", f.streamsPerS()/bl.streamsPerS(), f.Result.P50/bl.Result.P50)
				} else {
					w(" n/a | n/a |")
				}
			}
			w("\n")
		}
	}
	return b.String()
}

func metText(met bool, target string) string {
	if met {
		return target + " met"
	}
	return target + " **not met**"
}
