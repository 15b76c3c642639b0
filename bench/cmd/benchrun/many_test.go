package main

import (
	"strings"
	"testing"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
)

// TestRenderMany: fairness is the slowest stream ÷ the mean, server CPU
// per row is compared with one stream's, and the goals say met or not.
func TestRenderMany(t *testing.T) {
	c := &config{partitions: 6, batchRows: 10_000, many: manyConfig{rows: 400, ckptRows: 100, maxBuffered: 16 << 20, delivery: "exactly_once"}}
	one := &manyOutcome{Streams: 1, Result: benchdata.Result{Rows: 1_000_000, Seconds: 1, Watched: map[string]float64{"server": 1, "broker": 1},
		StreamRates: []float64{1_000_000}, Checkpoint: 3, P50: 0.01, P99: 0.02}}
	four := &manyOutcome{Streams: 4, Result: benchdata.Result{Rows: 1_000_000, Seconds: 1, Watched: map[string]float64{"server": 1.2, "broker": 1},
		StreamRates: []float64{100, 300, 300, 300}, Checkpoint: 12, P50: 0.01, P99: 0.02}}
	if f := four.fairness(); f != 0.4 {
		t.Fatalf("fairness %v, want 0.4 (100 ÷ mean 250)", f)
	}
	four.ColdServerPerM = 1.5 // the warm-up pass's
	c.many.warmupRows = 400
	md := renderMany(c, []*manyOutcome{one, four})
	for _, want := range []string{"| 4 | 1,000,000 | 1.00 | 1,000,000 | 1.20 | 1.20 | 1.50 |", "| 1 | 1,000,000 | 1.00 | 1,000,000 | 1.00 | 1.00 | – |",
		"flat **not met**", "≥ 0.50 **not met**", "16 MiB", "warm-up pass of the same streams (400 rows"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
	four.Result.StreamRates, four.Result.Watched["server"] = []float64{250, 250, 200, 300}, 1.05
	md = renderMany(c, []*manyOutcome{one, four})
	if !strings.Contains(md, "flat met") || !strings.Contains(md, "≥ 0.50 met") {
		t.Errorf("goals not met in:\n%s", md)
	}
}
