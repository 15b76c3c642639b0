package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"gonum.org/v1/plot/plotter"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
)

// The curves workload (BENCH_WORKLOADS has "curves"): contender A (Go
// client, at-least-once, one stream) on the narrow dataset cut into record
// batches of 100 … 100k rows, and on datasets of 5 … 200 columns (the wide
// dataset's columns, repeated: benchdata.ColumnsDataset); rows/s and server
// CPU per row at each point, drawn as charts.

// curvesConfig is the curves workload's part of the configuration.
type curvesConfig struct {
	batchRows []int // BENCH_CURVE_BATCH_ROWS
	columns   []int // BENCH_CURVE_COLUMNS
	rows      int64 // BENCH_CURVE_ROWS: rows of each batch-size point
	cells     int64 // BENCH_CURVE_CELLS: rows × columns of each columns point
}

func intList(name, def string, least int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(envStr(name, def), ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < least {
			return nil, fmt.Errorf("%s: %q is not a number ≥ %d", name, f, least)
		}
		out = append(out, n)
	}
	return out, nil
}

func loadCurves(c *config, get func(string, int64) int64) error {
	defRows, defCells := int64(2_000_000), int64(20_000_000)
	if c.quick {
		defRows, defCells = 400_000, 4_000_000
	}
	c.curves.rows, c.curves.cells = get("BENCH_CURVE_ROWS", defRows), get("BENCH_CURVE_CELLS", defCells)
	var err error
	if c.curves.batchRows, err = intList("BENCH_CURVE_BATCH_ROWS", "100,1000,10000,100000", 1); err != nil {
		return err
	}
	if c.curves.columns, err = intList("BENCH_CURVE_COLUMNS", "5,10,20,40,80,200", 3); err != nil {
		return err
	}
	if c.curves.rows < 1 || c.curves.cells < 1 {
		return fmt.Errorf("BENCH_CURVE_ROWS and BENCH_CURVE_CELLS must be at least 1")
	}
	return nil
}

// curvePoint is one run of the curves.
type curvePoint struct {
	Curve   string   `json:"curve"` // batch_rows or columns
	X       int      `json:"x"`
	Outcome *outcome `json:"outcome"`
}

func runCurves(ctx context.Context, c *config, adm *kadm.Client, runID, logDir string) ([]*curvePoint, error) {
	var out []*curvePoint
	point := func(curve string, x int, dataset string, rows int64, batchRows int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		file, meta, err := benchdata.Ensure(filepath.Join(c.work, "data"), dataset, rows, batchRows)
		if err != nil {
			return fmt.Errorf("curve dataset %s: %w", dataset, err)
		}
		label := fmt.Sprintf("%s-%d", strings.ReplaceAll(curve, "_", ""), x)
		o := runOne(ctx, c, adm, runID, logDir, label, "A", 1, file, meta)
		if o.ok() {
			logf("curve %s=%d: %.0f rows/s, server CPU %.2f s/M rows; %s", curve, x, o.rate(), o.perM(o.Result.Watched["server"]), o.Verified)
		} else {
			logf("curve %s=%d: FAILED: %s", curve, x, o.Err)
		}
		out = append(out, &curvePoint{Curve: curve, X: x, Outcome: o})
		pause(ctx, c.settle)
		return nil
	}
	for _, b := range c.curves.batchRows {
		if err := point("batch_rows", b, "narrow", c.curves.rows, b); err != nil {
			return out, err
		}
	}
	for _, n := range c.curves.columns {
		rows := max(c.curves.cells/int64(n), 1)
		if err := point("columns", n, benchdata.ColumnsDataset(n), rows, min(c.batchRows, int(rows))); err != nil {
			return out, err
		}
	}
	return out, nil
}

// renderCurves is the curves section of RESULTS.md.
func renderCurves(c *config, pts []*curvePoint) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Cost curves\n\n")
	w("Contender A (Go client → flightsink, at-least-once, one stream, a fresh server per point): the narrow dataset (%s rows) in record batches of each size; "+
		"and datasets of N columns (the wide dataset's columns in turn, repeated past 40; %s rows × columns per point, so wider rows make fewer of them) in batches of %s rows.\n\n",
		fmtInt(c.curves.rows), fmtInt(c.curves.cells), fmtInt(int64(c.batchRows)))
	w("| curve | x | rows | bytes/row | seconds | rows/s | MB/s | server CPU s/M rows | broker CPU s/M rows | verified |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, p := range pts {
		o := p.Outcome
		if !o.ok() {
			w("| %s | %d | FAILED | | | | | | | %s |\n", p.Curve, p.X, strings.ReplaceAll(o.Err, "|", "\\|"))
			continue
		}
		r := o.Result
		w("| %s | %d | %s | %.0f | %.2f | %s | %.1f | %.2f | %.2f | %s |\n", p.Curve, p.X, fmtInt(r.Rows), float64(r.ValueBytes)/float64(r.Rows),
			r.Seconds, fmtInt(int64(o.rate())), float64(r.ValueBytes)/1e6/r.Seconds, o.perM(r.Watched["server"]), o.perM(r.Watched["broker"]), o.Verified)
	}
	return b.String()
}

// curveCharts are the charts of the curves and of the many streams.
func curveCharts(pts []*curvePoint, many []*manyOutcome) []chart {
	xy := func(curve string, y func(*outcome) float64) plotter.XYs {
		var out plotter.XYs
		for _, p := range pts {
			if p.Curve == curve && p.Outcome.ok() {
				out = append(out, plotter.XY{X: float64(p.X), Y: y(p.Outcome)})
			}
		}
		return out
	}
	rate := func(o *outcome) float64 { return o.rate() / 1e3 }
	server := func(o *outcome) float64 { return o.perM(o.Result.Watched["server"]) }
	broker := func(o *outcome) float64 { return o.perM(o.Result.Watched["broker"]) }
	var mRate, mServer, mBroker, mFair plotter.XYs
	for _, o := range many {
		if o.ok() {
			x := float64(o.Streams)
			mRate = append(mRate, plotter.XY{X: x, Y: o.rate() / 1e3})
			mServer = append(mServer, plotter.XY{X: x, Y: o.serverPerM()})
			mBroker = append(mBroker, plotter.XY{X: x, Y: o.Result.Watched["broker"] / float64(o.Result.Rows) * 1e6})
			mFair = append(mFair, plotter.XY{X: x, Y: o.fairness()})
		}
	}
	return []chart{
		{file: "batch-rows-per-s.svg", title: "rows/s vs record batch size (narrow, A)", x: "rows per record batch", y: "thousand rows/s", logX: true,
			lines: []series{{"A: at-least-once", xy("batch_rows", rate)}}},
		{file: "batch-cpu.svg", title: "CPU per row vs record batch size (narrow, A)", x: "rows per record batch", y: "CPU s per million rows", logX: true,
			lines: []series{{"flightsink server", xy("batch_rows", server)}, {"Kafka broker", xy("batch_rows", broker)}}},
		{file: "columns-rows-per-s.svg", title: "rows/s vs columns (A)", x: "columns", y: "thousand rows/s", logX: true,
			lines: []series{{"A: at-least-once", xy("columns", rate)}}},
		{file: "columns-cpu.svg", title: "CPU per row vs columns (A)", x: "columns", y: "CPU s per million rows", logX: true, legendLeft: true,
			lines: []series{{"flightsink server", xy("columns", server)}, {"Kafka broker", xy("columns", broker)}}},
		{file: "streams-rows-per-s.svg", title: "aggregate rows/s vs concurrent streams (narrow)", x: "concurrent streams", y: "thousand rows/s", logX: true, legendLeft: true,
			lines: []series{{"all streams", mRate}}},
		{file: "streams-cpu.svg", title: "CPU per row vs concurrent streams (narrow)", x: "concurrent streams", y: "CPU s per million rows", logX: true, legendLeft: true,
			lines: []series{{"flightsink server", mServer}, {"Kafka broker", mBroker}}},
		{file: "streams-fairness.svg", title: "fairness vs concurrent streams: slowest ÷ mean rows/s", x: "concurrent streams", y: "slowest ÷ mean", logX: true,
			lines: []series{{"fairness", mFair}}},
	}
}
