package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

// TestWriteCharts: charts with points are written as SVG under charts/
// next to the report and linked from it; a chart without points is left
// out.
func TestWriteCharts(t *testing.T) {
	out := filepath.Join(t.TempDir(), "RESULTS.md")
	charts := []chart{
		{file: "a.svg", title: "rows/s vs columns", x: "columns", y: "rows/s", logX: true,
			lines: []series{{"A", plotter.XYs{{X: 200, Y: 1}, {X: 5, Y: 30}, {X: 40, Y: 8}}}}},
		{file: "empty.svg", title: "nothing measured", lines: []series{{"A", nil}}},
	}
	md, err := writeCharts(out, charts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "![rows/s vs columns](charts/a.svg)") || strings.Contains(md, "empty.svg") {
		t.Fatalf("markdown:\n%s", md)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(out), "charts", "a.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "<?xml") || !strings.Contains(string(b), "rows/s vs columns") {
		t.Fatalf("a.svg is no SVG chart: %.200s", b)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "charts", "empty.svg")); !os.IsNotExist(err) {
		t.Fatalf("empty.svg: %v", err)
	}
}
