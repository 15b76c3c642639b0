// Command benchrun is the benchmark's orchestrator (bench/run.sh starts the
// broker and builds the binaries, then runs it). In one run, on the same
// data, it runs every contender against the broker, measures it, checks in
// Kafka that every record landed, and writes bench/RESULTS.md.
//
// Contenders (see bench/README.md):
//
//	L   bench/cmd/limit: franz-go, flightsink's producer settings, values serialized before timing
//	A   bench/cmd/goclient: Go Flight client -> flightsink (at_least_once)
//	AE  bench/cmd/goclient: the same, exactly_once with a checkpoint every 100k rows, pipelined
//	    (MarkCheckpoint: the client goes on sending while the server commits)
//	AEW bench/cmd/goclient: AE waiting for each checkpoint's ack before sending more (Checkpoint)
//	B   bench/pyclient.py B: pyarrow do_put -> flightsink (exactly_once, checkpoint every 100k rows)
//	P   bench/pyclient.py P: to_pylist -> json.dumps -> confluent_kafka.Producer (a subset of the rows)
//
// Each contender measures its own timed window (it loads the data first) and
// the CPU of the server and the broker over that window (/proc/PID/stat);
// every flightsink contender gets a fresh server process, so its peak RSS
// (VmHWM) is its own.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
	"github.com/flightsink/flightsink/kafka"
)

type config struct {
	quick       bool
	brokers     string
	brokerPID   int
	rows        map[string]int64
	pRows       map[string]int64
	warmupRows  int64
	soak        time.Duration // BENCH_SOAK_SECONDS: the soak run instead of the contenders
	batchRows   int
	partitions  int32
	ckptRows    int64
	repeat      int
	contenders  []string
	datasets    []string
	timeout     time.Duration
	settle      time.Duration
	out         string
	work        string
	python      string
	pyclient    string
	compression string // kafka.compression of the servers, used by L and P too
	serverBin   string
	limitBin    string
	goclientBin string
	kafkaLib    string
	kafkaJVM    string
	profile     bool
	workloads   map[string]bool // BENCH_WORKLOADS: throughput, small, many
	small       smallConfig
	many        manyConfig
	curves      curvesConfig
	serverEnv   []string // settings of one workload's servers (after the caller's FLIGHTSINK_*)
}

// workloadNames are the workloads BENCH_WORKLOADS may name, in run order.
var workloadNames = []string{"throughput", "small", "many", "curves"}

func envInt(name string, def int64) (int64, error) {
	v := strings.ReplaceAll(os.Getenv(name), "_", "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a non-negative integer", name, os.Getenv(name))
	}
	return n, nil
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func loadConfig() (*config, error) {
	c := &config{quick: os.Getenv("BENCH_QUICK") == "1"}
	defNarrow, defWide, defPNarrow, defPWide := int64(10_000_000), int64(1_000_000), int64(1_000_000), int64(100_000)
	defTimeout := int64(1200)
	if c.quick {
		defNarrow, defWide, defPNarrow, defPWide = 1_000_000, 100_000, 200_000, 20_000
		defTimeout = 300
	}
	var err error
	get := func(name string, def int64) int64 {
		if err != nil {
			return 0
		}
		var n int64
		n, err = envInt(name, def)
		return n
	}
	c.rows = map[string]int64{"narrow": get("BENCH_ROWS_NARROW", defNarrow), "wide": get("BENCH_ROWS_WIDE", defWide)}
	c.pRows = map[string]int64{"narrow": get("BENCH_P_ROWS_NARROW", defPNarrow), "wide": get("BENCH_P_ROWS_WIDE", defPWide)}
	c.warmupRows = get("BENCH_WARMUP_ROWS", 300_000)
	c.batchRows = int(get("BENCH_BATCH_ROWS", 10_000))
	c.partitions = int32(get("BENCH_PARTITIONS", 6))
	c.ckptRows = get("BENCH_CHECKPOINT_ROWS", 100_000)
	c.soak = time.Duration(get("BENCH_SOAK_SECONDS", 0)) * time.Second
	c.repeat = int(get("BENCH_REPEAT", 1))
	c.timeout = time.Duration(get("BENCH_TIMEOUT", defTimeout)) * time.Second
	c.settle = time.Duration(get("BENCH_SETTLE_MS", 2000)) * time.Millisecond
	pid := get("BENCH_BROKER_PID", 0)
	if err != nil {
		return nil, err
	}
	if err := loadSmall(c, get); err != nil {
		return nil, err
	}
	if err := loadMany(c, get); err != nil {
		return nil, err
	}
	if err := loadCurves(c, get); err != nil {
		return nil, err
	}
	c.workloads = map[string]bool{}
	for _, w := range strings.Split(envStr("BENCH_WORKLOADS", strings.Join(workloadNames, ",")), ",") {
		if !slices.Contains(workloadNames, w) {
			return nil, fmt.Errorf("BENCH_WORKLOADS: unknown workload %q (want some of %s)", w, strings.Join(workloadNames, ","))
		}
		c.workloads[w] = true
	}
	c.brokerPID = int(pid)
	c.brokers = os.Getenv("BENCH_BROKERS")
	if c.brokers == "" || c.brokerPID == 0 {
		return nil, errors.New("BENCH_BROKERS and BENCH_BROKER_PID are required (bench/run.sh sets them)")
	}
	if c.batchRows < 1 || c.partitions < 1 || c.repeat < 1 {
		return nil, errors.New("BENCH_BATCH_ROWS, BENCH_PARTITIONS and BENCH_REPEAT must be at least 1")
	}
	for _, r := range c.rows {
		if r < 1 {
			return nil, errors.New("BENCH_ROWS_* must be at least 1")
		}
	}
	c.contenders = strings.Split(envStr("BENCH_CONTENDERS", "L,A,AE,AEW,B,P"), ",")
	for _, k := range c.contenders {
		if _, ok := contenders[k]; !ok || k == "A0" && c.small.baseline == "" {
			return nil, fmt.Errorf("BENCH_CONTENDERS: unknown contender %q (want some of L,A,AE,AEW,B,P, or A0 with BENCH_BASELINE_SERVER_BIN)", k)
		}
	}
	c.datasets = strings.Split(envStr("BENCH_DATASETS", "narrow,wide"), ",")
	for _, d := range c.datasets {
		if _, ok := c.rows[d]; !ok {
			return nil, fmt.Errorf("BENCH_DATASETS: unknown dataset %q (want narrow and/or wide)", d)
		}
	}
	c.out = envStr("BENCH_OUT", "bench/RESULTS.md")
	c.work = envStr("BENCH_WORK", ".cache/bench")
	c.python = envStr("BENCH_PYTHON", ".cache/venv/bin/python")
	c.pyclient = envStr("BENCH_PYCLIENT", "bench/pyclient.py")
	// L and P compress as the servers do (FLIGHTSINK_KAFKA_COMPRESSION passes through to them)
	c.compression = envStr("FLIGHTSINK_KAFKA_COMPRESSION", kafka.DefaultConfig().Compression)
	c.serverBin = envStr("BENCH_SERVER_BIN", "bin/bench/flightsink")
	c.limitBin = envStr("BENCH_LIMIT_BIN", "bin/bench/limit")
	c.goclientBin = envStr("BENCH_GOCLIENT_BIN", "bin/bench/goclient")
	c.kafkaLib = os.Getenv("BENCH_KAFKA_LIB")
	c.kafkaJVM = os.Getenv("BENCH_KAFKA_JVM")
	if os.Getenv("BENCH_PROFILE") == "1" {
		if _, err := exec.LookPath("perf"); err != nil {
			return nil, errors.New("BENCH_PROFILE=1 needs perf (linux-perf) on PATH")
		}
		c.profile = true
	}
	return c, nil
}

// contender describes one way of getting the dataset into Kafka.
type contender struct {
	label  string // table label
	server bool   // runs through a flightsink server
	txn    bool   // writes transactionally (end offsets include commit markers)
}

var contenders = map[string]contender{
	"L":   {label: "L  limit: franz-go, pre-serialized"},
	"A":   {label: "A  Go client → flightsink, at-least-once", server: true},
	"A0":  {label: "A0 A against the baseline server (BENCH_BASELINE_SERVER_BIN)", server: true},
	"AE":  {label: "AE Go client → flightsink, exactly-once, ckpt/100k pipelined", server: true, txn: true},
	"AEW": {label: "AEW the same, waiting for each checkpoint's ack", server: true, txn: true},
	"B":   {label: "B  pyarrow → flightsink, exactly-once, ckpt/100k pipelined", server: true, txn: true},
	"P":   {label: "P  python: to_pylist → json.dumps → confluent-kafka"},
}

// outcome is one contender's run on one dataset.
type outcome struct {
	Dataset string `json:"dataset"`
	Key     string `json:"contender"`
	Rep     int    `json:"rep"`
	// Rates are the rows/s of every run of this contender (set on the
	// median outcome that stands for them all).
	Rates     []float64        `json:"rates,omitempty"`
	Topic     string           `json:"topic"`
	Result    benchdata.Result `json:"result"`
	RSSPeakKB int64            `json:"server_rss_peak_kb,omitempty"`
	RSSCurve  []int64          `json:"server_rss_kb_curve,omitempty"` // VmRSS every rssEvery
	Profile   string           `json:"server_profile,omitempty"`      // top of `perf report` (BENCH_PROFILE=1)
	// Server-side checkpoint cost, from the server's own histograms:
	// flush + commit (flightsink_checkpoint_seconds) and the EndTxn call
	// alone (flightsink_checkpoint_commit_seconds), sums in seconds.
	ServerCheckpointS float64 `json:"server_checkpoint_s,omitempty"`
	ServerCommitS     float64 `json:"server_commit_s,omitempty"`
	ServerCommits     float64 `json:"server_commits,omitempty"`
	Verified          string  `json:"verified,omitempty"`
	Err               string  `json:"error,omitempty"`
}

const rssEvery = 500 * time.Millisecond

func (o *outcome) ok() bool { return o != nil && o.Err == "" }

// median returns the run with the median rows/s (the lower middle of an
// even count), carrying every run's rate; or the first failed run.
func median(runs []*outcome) *outcome {
	var ok []*outcome
	for _, o := range runs {
		if !o.ok() {
			return o
		}
		ok = append(ok, o)
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].rate() < ok[j].rate() })
	m := *ok[(len(ok)-1)/2]
	for _, o := range runs {
		m.Rates = append(m.Rates, o.rate())
	}
	return &m
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context) (int, error) {
	c, err := loadConfig()
	if err != nil {
		return 0, err
	}
	machine := describeMachine(c)
	started := time.Now()
	runID := started.UTC().Format("20060102t150405")
	logDir := filepath.Join(c.work, "logs", runID)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.brokers, ",")...), kgo.ClientID("bench-admin"))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	if c.soak > 0 {
		return 0, runSoak(ctx, c, adm, machine, runID, logDir)
	}

	if err := warmUp(ctx, c, adm, runID, logDir); err != nil {
		return 0, err
	}
	var outcomes []*outcome
	metas := map[string]benchdata.Meta{}
	if c.workloads["throughput"] {
		var err error
		if outcomes, metas, err = runThroughput(ctx, c, adm, runID, logDir); err != nil {
			return 0, err
		}
	}
	var small []*smallOutcome
	if c.workloads["small"] {
		if small, err = runSmall(ctx, c, adm, runID, logDir); err != nil {
			return 0, err
		}
	}

	var many []*manyOutcome
	if c.workloads["many"] {
		if many, err = runMany(ctx, c, adm, runID, logDir); err != nil {
			return 0, err
		}
	}
	var curves []*curvePoint
	if c.workloads["curves"] {
		if curves, err = runCurves(ctx, c, adm, runID, logDir); err != nil {
			return 0, err
		}
	}

	report := renderReport(c, machine, metas, outcomes, started)
	if c.workloads["small"] {
		report += renderSmall(c, small)
	}
	if c.workloads["many"] {
		report += renderMany(c, many)
	}
	if c.workloads["curves"] {
		report += renderCurves(c, curves)
	}
	charts, err := writeCharts(c.out, curveCharts(curves, many))
	if err != nil {
		return 0, err
	}
	report += charts
	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(c.out, []byte(report), 0o644); err != nil {
		return 0, err
	}
	raw, _ := json.MarshalIndent(map[string]any{"machine": machine, "metas": metas, "outcomes": outcomes, "small": small, "many": many, "curves": curves}, "", "  ")
	_ = os.WriteFile(filepath.Join(logDir, "results.json"), raw, 0o644)
	fmt.Println(report)
	logf("wrote %s (raw results and logs: %s)", c.out, logDir)
	for _, o := range outcomes {
		if !o.ok() {
			return 1, nil
		}
	}
	for _, o := range small {
		if !o.ok() {
			return 1, nil
		}
	}
	for _, o := range many {
		if !o.ok() {
			return 1, nil
		}
	}
	for _, p := range curves {
		if !p.Outcome.ok() {
			return 1, nil
		}
	}
	return 0, nil
}

// runThroughput is the throughput workload: every contender on every
// dataset, BENCH_REPEAT times; it returns each contender's median run.
func runThroughput(ctx context.Context, c *config, adm *kadm.Client, runID, logDir string) ([]*outcome, map[string]benchdata.Meta, error) {
	// ---- data (untimed, cached across runs)
	files := map[string]string{}
	metas := map[string]benchdata.Meta{}
	for _, d := range c.datasets {
		t0 := time.Now()
		path, meta, err := benchdata.Ensure(filepath.Join(c.work, "data"), d, c.rows[d], c.batchRows)
		if err != nil {
			return nil, nil, fmt.Errorf("dataset %s: %w", d, err)
		}
		files[d], metas[d] = path, meta
		logf("dataset %s: %d rows, %d columns, %.1f MB Arrow IPC, %.1f MB of JSON values (%.0f B/row) (%v)",
			d, meta.Rows, meta.Columns, float64(meta.FileBytes)/1e6, float64(meta.ValueBytes)/1e6,
			float64(meta.ValueBytes)/float64(meta.Rows), time.Since(t0).Round(time.Millisecond))
	}

	// every repetition runs each contender once, in order; a contender's
	// figure is its median run by rows/s (any failed run fails it)
	runs := map[string][]*outcome{}
	for _, d := range c.datasets {
		for rep := 1; rep <= c.repeat; rep++ {
			for _, k := range c.contenders {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				var o *outcome
				if !processAlive(c.brokerPID) {
					o = &outcome{Dataset: d, Key: k, Err: fmt.Sprintf("the Kafka broker (pid %d) is gone; see its logs (bench/run.sh copies them to %s)", c.brokerPID, filepath.Join(c.work, "logs", "broker"))}
				} else {
					o = runOne(ctx, c, adm, runID, logDir, d, k, rep, files[d], metas[d])
				}
				runs[d+"/"+k] = append(runs[d+"/"+k], o)
				if o.ok() {
					r := o.Result
					logf("%s %s #%d: %d rows in %.2fs = %.0f rows/s; CPU client %.2fs server %.2fs broker %.2fs; %s",
						d, k, rep, r.Rows, r.Seconds, float64(r.Rows)/r.Seconds, r.ClientCPU, r.Watched["server"], r.Watched["broker"], o.Verified)
				} else {
					logf("%s %s #%d: FAILED: %s", d, k, rep, o.Err)
				}
				pause(ctx, c.settle)
			}
		}
	}
	var outcomes []*outcome
	for _, d := range c.datasets {
		for _, k := range c.contenders {
			outcomes = append(outcomes, median(runs[d+"/"+k]))
		}
	}
	return outcomes, metas, nil
}

// warmUp sends BENCH_WARMUP_ROWS through L, then through flightsink
// exactly-once: the broker's JIT and page cache, not measured.
func warmUp(ctx context.Context, c *config, adm *kadm.Client, runID, logDir string) error {
	if c.warmupRows > 0 {
		path, _, err := benchdata.Ensure(filepath.Join(c.work, "data"), "narrow", c.warmupRows, c.batchRows)
		if err != nil {
			return err
		}
		topic := "bench-" + runID + "-warmup"
		if err := createTopic(ctx, adm, topic, c.partitions); err != nil {
			return err
		}
		logf("warm-up: %d narrow rows through L (not measured)", c.warmupRows)
		if _, err := runContender(ctx, c, []string{c.limitBin, "--data", path, "--brokers", c.brokers, "--compression", c.compression, "--topic", topic,
			"--name", "warmup"}, filepath.Join(logDir, "warmup.log")); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		// The broker's transaction paths (implicit partition adds, EndTxn,
		// markers) are cold after L: without this the first exactly-once
		// contender pays the JIT's warm-up in broker CPU.
		txTopic := topic + "-txn"
		if err := createTopic(ctx, adm, txTopic, c.partitions); err != nil {
			return err
		}
		every := max(c.warmupRows/100, 1)
		logf("warm-up: %d narrow rows through flightsink, exactly-once, a checkpoint every %d rows (not measured)", c.warmupRows, every)
		srv, err := startServer(ctx, c, filepath.Join(logDir, "warmup-server.log"))
		if err != nil {
			return err
		}
		_, err = runContender(ctx, c, []string{c.goclientBin, "--data", path, "--addr", srv.addr, "--delivery", "exactly_once",
			"--checkpoint-every", strconv.FormatInt(every, 10), "--topic", txTopic, "--name", "warmup"}, filepath.Join(logDir, "warmup-txn.log"))
		if serr := srv.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		pause(ctx, c.settle)
	}
	return nil
}

// processAlive: pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	return createTopicWith(ctx, adm, topic, partitions, nil)
}

// waitLeaders waits until every partition of topic has a leader.
func waitLeaders(ctx context.Context, adm *kadm.Client, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		td, err := adm.ListTopics(ctx, topic)
		if err == nil {
			if t, ok := td[topic]; ok && t.Err == nil && len(t.Partitions) > 0 {
				ready := true
				for _, p := range t.Partitions {
					if p.Leader < 0 || p.Err != nil {
						ready = false
					}
				}
				if ready {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s: no leaders: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runOne runs contender k on dataset d and verifies what landed.
func runOne(ctx context.Context, c *config, adm *kadm.Client, runID, logDir, d, k string, rep int, file string, meta benchdata.Meta) *outcome {
	o := &outcome{Dataset: d, Key: k, Rep: rep, Topic: fmt.Sprintf("bench-%s-%s-%s-%d", runID, d, strings.ToLower(k), rep)}
	fail := func(err error) *outcome { o.Err = err.Error(); return o }
	ct := contenders[k]
	if err := createTopic(ctx, adm, o.Topic, c.partitions); err != nil {
		return fail(err)
	}
	watch := fmt.Sprintf("broker=%d", c.brokerPID)
	var srv *server
	if ct.server {
		var err error
		sc := *c
		if k == "A0" {
			sc.serverBin = c.small.baseline
		}
		if srv, err = startServer(ctx, &sc, filepath.Join(logDir, fmt.Sprintf("server-%s-%s-%d.log", d, k, rep))); err != nil {
			return fail(err)
		}
		defer func() { _ = srv.stop() }() // a server that does not stop is killed; the run is over anyway
		watch = fmt.Sprintf("server=%d,%s", srv.cmd.Process.Pid, watch)
	}
	var prof *profiler
	if srv != nil && c.profile {
		var err error
		if prof, err = startPerf(srv.cmd.Process.Pid, filepath.Join(logDir, fmt.Sprintf("perf-%s-%s-%d.data", d, k, rep))); err != nil {
			return fail(err)
		}
		defer prof.stop()
	}
	expect := meta.Rows
	var args []string
	switch k {
	case "L":
		args = []string{c.limitBin, "--data", file, "--brokers", c.brokers, "--compression", c.compression}
	case "A", "A0":
		args = []string{c.goclientBin, "--data", file, "--addr", srv.addr, "--delivery", "at_least_once"}
	case "AE", "AEW":
		args = []string{c.goclientBin, "--data", file, "--addr", srv.addr, "--delivery", "exactly_once",
			"--checkpoint-every", strconv.FormatInt(c.ckptRows, 10), "--wait=" + strconv.FormatBool(k == "AEW")}
	case "B":
		args = []string{c.python, c.pyclient, "--mode", "B", "--data", file, "--addr", srv.addr,
			"--checkpoint-every", strconv.FormatInt(c.ckptRows, 10)}
	case "P":
		expect = min(meta.Rows, c.pRows[d])
		args = []string{c.python, c.pyclient, "--mode", "P", "--data", file, "--brokers", c.brokers, "--compression", c.compression,
			"--rows", strconv.FormatInt(expect, 10), "--timeout", strconv.Itoa(int(c.timeout.Seconds()))}
	}
	args = append(args, "--topic", o.Topic, "--watch", watch, "--name", k)
	logf("%s %s: running (%d rows, topic %s)", d, k, expect, o.Topic)
	res, err := runContender(ctx, c, args, filepath.Join(logDir, fmt.Sprintf("client-%s-%s-%d.log", d, k, rep)))
	if prof != nil {
		o.Profile = prof.stop()
	}
	if srv != nil {
		if m, merr := scrape(srv.metrics); merr == nil {
			o.ServerCheckpointS = m[`flightsink_checkpoint_seconds_sum{delivery="exactly_once"}`]
			o.ServerCommitS = m["flightsink_checkpoint_commit_seconds_sum"]
			o.ServerCommits = m["flightsink_checkpoint_commit_seconds_count"]
		} else {
			logf("%s %s: reading the server's metrics: %v", d, k, merr)
		}
		o.RSSPeakKB, _ = benchdata.ProcStatusKB(srv.cmd.Process.Pid, "VmHWM")
		o.RSSCurve = srv.rssCurve()
		if serr := srv.stop(); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return fail(err)
	}
	o.Result = *res
	switch {
	case res.Rows != expect:
		return fail(fmt.Errorf("contender reports %d rows, expected %d", res.Rows, expect))
	case res.Seconds <= 0:
		return fail(errors.New("contender reports no elapsed time"))
	}
	v, err := verify(ctx, c, adm, o.Topic, expect, ct.txn, res.Checkpoint)
	if err != nil {
		return fail(fmt.Errorf("verification: %w", err))
	}
	o.Verified = v
	return o
}

// verify checks that the topic holds exactly want records: the sum of the
// end offsets for plain producers; for transactional ones (whose end offsets
// also count one commit marker per partition and transaction) it consumes
// the topic read_committed and counts.
func verify(ctx context.Context, c *config, adm *kadm.Client, topic string, want int64, txn bool, checkpoints int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return "", err
	}
	if err := ends.Error(); err != nil {
		return "", err
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	if !txn {
		if sum != want {
			return "", fmt.Errorf("topic %s has %d records (sum of end offsets), expected %d", topic, sum, want)
		}
		return fmt.Sprintf("end offsets = %d", sum), nil
	}
	// at most one marker per partition and transaction (checkpoints + the clean end)
	maxMarkers := (checkpoints + 1) * int64(c.partitions)
	if sum < want || sum > want+maxMarkers {
		return "", fmt.Errorf("topic %s: end offsets sum to %d, expected %d records plus at most %d commit markers", topic, sum, want, maxMarkers)
	}
	n, err := countCommitted(ctx, c, topic, want)
	if err != nil {
		return "", err
	}
	if n != want {
		return "", fmt.Errorf("topic %s has %d committed records, expected %d", topic, n, want)
	}
	return fmt.Sprintf("read_committed count = %d", n), nil
}

func countCommitted(ctx context.Context, c *config, topic string, want int64) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.brokers, ",")...), kgo.ClientID("bench-verify"),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var n int64
	for {
		// read until nothing more comes: 10 s without a record while some
		// are missing, 1 s once all are here (to catch any extra ones)
		idle := 10 * time.Second
		if n >= want {
			idle = time.Second
		}
		pctx, cancel := context.WithTimeout(ctx, idle)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return n, fmt.Errorf("counting %s: read %d of %d records: %w", topic, n, want, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return n, fmt.Errorf("counting %s: %w", topic, fe.Err)
			}
		}
		got := int64(fs.NumRecords())
		if got == 0 && pctx.Err() != nil {
			return n, nil
		}
		n += got
	}
}

// runContender runs one contender process and parses its result line.
func runContender(ctx context.Context, c *config, args []string, logPath string) (*benchdata.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "$ %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = logFile
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	fmt.Fprintf(logFile, "--- stdout\n%s", stdout.String())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timeout BENCH_TIMEOUT=%v)", ctx.Err(), c.timeout)
		}
		return nil, fmt.Errorf("%s: %v; %s", filepath.Base(args[0]), err, tail(logPath, 6))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res benchdata.Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return nil, fmt.Errorf("%s: no result line (%v); see %s", filepath.Base(args[0]), err, logPath)
	}
	return &res, nil
}

// tail returns the last n lines of a log, on one line.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("log %s: %s", path, strings.Join(lines, " | "))
}

// ---------------------------------------------------------------- the server

type server struct {
	cmd     *exec.Cmd
	addr    string
	metrics string // host:port of its Prometheus listener
	log     *os.File
	exited  chan struct{}
	err     error
	samples chan []int64
	quit    chan struct{}
	stopped bool
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts a fresh flightsink and waits until it accepts
// connections (it listens only once its Kafka start-up checks are done).
// A port taken between picking and binding it costs another attempt.
func startServer(ctx context.Context, c *config, logPath string) (*server, error) {
	for attempt := 1; ; attempt++ {
		s, err := startServerOnce(ctx, c, logPath)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
		logf("flightsink could not bind its ports (%v); retrying", err)
	}
}

func startServerOnce(ctx context.Context, c *config, logPath string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.serverBin, "serve", "--listen", addr, "--brokers", c.brokers, "--config", "/dev/null")
	mport, err := freePort()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	// FLIGHTSINK_* variables of the caller pass through (RESULTS.md lists
	// them); the metrics listener (on by default) gets a port of its own.
	cmd.Env = append(os.Environ(), "FLIGHTSINK_LOG_LEVEL="+envStr("BENCH_SERVER_LOG_LEVEL", "warn"),
		fmt.Sprintf("FLIGHTSINK_METRICS_LISTEN=127.0.0.1:%d", mport))
	cmd.Env = append(cmd.Env, c.serverEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &server{cmd: cmd, addr: addr, metrics: fmt.Sprintf("127.0.0.1:%d", mport), log: logFile, exited: make(chan struct{}), samples: make(chan []int64, 1), quit: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(120 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case <-s.exited:
			logFile.Close()
			return nil, fmt.Errorf("flightsink exited during start-up (%v); %s", s.err, tail(logPath, 6))
		case <-ctx.Done():
			_ = s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return nil, fmt.Errorf("flightsink did not listen on %s within 120s; %s", addr, tail(logPath, 6))
		}
	}
	go s.sampleRSS()
	return s, nil
}

// scrape reads a Prometheus text exposition into series → value (series
// as written, labels included; comments skipped).
func scrape(addr string) (map[string]float64, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func (s *server) sampleRSS() {
	var curve []int64
	t := time.NewTicker(rssEvery)
	defer t.Stop()
	for {
		if kb, err := benchdata.ProcStatusKB(s.cmd.Process.Pid, "VmRSS"); err == nil {
			curve = append(curve, kb)
		}
		select {
		case <-s.quit:
			s.samples <- curve
			return
		case <-s.exited:
			s.samples <- curve
			return
		case <-t.C:
		}
	}
}

func (s *server) rssCurve() []int64 {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	return <-s.samples
}

// stop ends the server with SIGTERM (SIGKILL after 40 s). An exit status
// other than 0 after SIGTERM is an error.
func (s *server) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	defer s.log.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(40 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("flightsink did not stop within 40s of SIGTERM")
	}
	if s.err != nil {
		return fmt.Errorf("flightsink exited with %v after SIGTERM", s.err)
	}
	return nil
}

// ---------------------------------------------------------------- perf

// profiler samples the server's stacks with perf while a contender runs
// (BENCH_PROFILE=1); stop returns the top of its flat profile.
type profiler struct {
	cmd    *exec.Cmd
	path   string
	done   chan struct{}
	report string
}

func startPerf(pid int, path string) (*profiler, error) {
	cmd := exec.Command("perf", "record", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", path)
	cmd.Stdout, cmd.Stderr = nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // attached before the contender starts
	return &profiler{cmd: cmd, path: path}, nil
}

func (p *profiler) stop() string {
	if p.done != nil {
		return p.report
	}
	p.done = make(chan struct{})
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	flat := perfReport(p.path, false, 30, func(string) bool { return true })
	incl := perfReport(p.path, true, 20, func(l string) bool { return strings.Contains(l, "flightsink/flightsink") })
	p.report = "self time, top symbols:\n" + flat + "\n\nincluding callees, flightsink's own functions:\n" + incl
	return p.report
}

// perfReport returns up to n lines of perf report's by-symbol table that
// keep() accepts: self time, or with children (inclusive) time.
func perfReport(path string, children bool, n int, keep func(string) bool) string {
	mode := "--no-children"
	if children {
		mode = "--children"
	}
	out, err := exec.Command("perf", "report", "-i", path, mode, "--sort", "symbol", "--stdio",
		"-g", "none", "--percent-limit", "0.7").Output()
	if err != nil {
		return "perf report failed: " + err.Error()
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") || !strings.Contains(l, "%") || !keep(l) {
			continue
		}
		lines = append(lines, strings.TrimRight(strings.ReplaceAll(l, "  -      -", ""), " "))
		if len(lines) == n {
			break
		}
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------- machine

type machineInfo struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryGB  string `json:"memory"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	Java      string `json:"java"`
	Kafka     string `json:"kafka"`
	KafkaJVM  string `json:"kafka_jvm"`
	Python    string `json:"python"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
	Commit    string `json:"commit"`
}

func firstLine(s string) string { return strings.TrimSpace(strings.SplitN(s, "\n", 2)[0]) }

func describeMachine(c *config) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Go: runtime.Version(), KafkaJVM: c.kafkaJVM}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := benchdata.ProcStatusKBFile("/proc/meminfo", "MemTotal"); err == nil {
		m.MemoryGB = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadStart = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if out, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
		m.Java = firstLine(string(out))
	}
	if c.kafkaLib != "" {
		if ms, _ := filepath.Glob(filepath.Join(c.kafkaLib, "kafka-server-[0-9]*.jar")); len(ms) > 0 {
			m.Kafka = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(ms[0]), "kafka-server-"), ".jar")
		}
	}
	if out, err := exec.Command(c.python, "-c",
		"import sys, pyarrow, confluent_kafka; print('Python %s, pyarrow %s, confluent-kafka %s (librdkafka %s)' % "+
			"(sys.version.split()[0], pyarrow.__version__, confluent_kafka.version()[0], confluent_kafka.libversion()[0]))").Output(); err == nil {
		m.Python = firstLine(string(out))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = firstLine(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Commit += " (with uncommitted changes)"
		}
	}
	return m
}
