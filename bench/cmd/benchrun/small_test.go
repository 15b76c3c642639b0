package main

import (
	"strings"
	"testing"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
)

// TestRenderSmall: flightsink ÷ native per scenario, the sequential goals
// judged (streams/s ≥ 1 in both modes, at-least-once p50 ≤ 2×), and the
// baseline column when one ran.
func TestRenderSmall(t *testing.T) {
	c := &config{partitions: 6, small: smallConfig{streams: 10, concurrent: 40, conc: 16, rows: 100,
		deliveries: []string{"at_least_once"}, baseline: "/tmp/old-flightsink"}}
	o := func(target string, conc int, streams int64, secs, p50 float64) *smallOutcome {
		return &smallOutcome{Delivery: "at_least_once", Conc: conc, Target: target, Result: benchdata.Result{Streams: streams,
			Rows: 100 * streams, Seconds: secs, P50: p50, P99: 2 * p50, Watched: map[string]float64{"server": 0.1, "broker": 0.1}}}
	}
	md := renderSmall(c, []*smallOutcome{
		o("flightsink", 1, 10, 1, 0.009), o("baseline", 1, 10, 2, 0.009), o("native", 1, 10, 0.5, 0.004),
		o("flightsink", 16, 40, 1, 0.02), o("baseline", 16, 40, 1, 0.02), o("native", 16, 40, 1, 0.02),
	})
	for _, want := range []string{
		"| at_least_once | 1 | 0.50 | ≥ 1.00 **not met** | 2.25 | ≤ 2.00 **not met** | 2.25 | 2.00 | 1.00 |",
		"| at_least_once | 16 | 1.00 | (info) | 1.00 | (info) | 1.00 | 1.00 | 1.00 |",
		"| at_least_once | 1 | baseline | 10 | 2.00 | 5.0 | 9.0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
}
