package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Charts: SVG line charts (gonum.org/v1/plot) written into a charts/
// directory next to RESULTS.md and linked from it: the cost curves as
// pictures.

// series is one line of a chart: its points, in any order.
type series struct {
	name string
	pts  plotter.XYs
}

// chart describes one SVG file.
type chart struct {
	file, title, x, y string
	logX              bool
	legendLeft        bool // the lines rise: the legend goes top left, out of their way
	lines             []series
}

// chartsDir is where the charts of a report written to out go.
func chartsDir(out string) string { return filepath.Join(filepath.Dir(out), "charts") }

// write renders the chart into dir; a chart with no points is skipped
// (false).
func (ch chart) write(dir string) (bool, error) {
	var args []any
	for _, s := range ch.lines {
		if len(s.pts) == 0 {
			continue
		}
		pts := append(plotter.XYs(nil), s.pts...)
		sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
		args = append(args, s.name, pts)
	}
	if len(args) == 0 {
		return false, nil
	}
	p := plot.New()
	p.Title.Text = ch.title
	p.X.Label.Text, p.Y.Label.Text = ch.x, ch.y
	if ch.logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return false, err
	}
	p.Legend.Top, p.Legend.Left = true, ch.legendLeft
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, ch.file)); err != nil {
		return false, fmt.Errorf("chart %s: %w", ch.file, err)
	}
	return true, nil
}

// writeCharts writes every chart that has points and returns the markdown
// that shows them, with paths relative to RESULTS.md.
func writeCharts(out string, charts []chart) (string, error) {
	var md string
	for _, ch := range charts {
		ok, err := ch.write(chartsDir(out))
		if err != nil {
			return md, err
		}
		if ok {
			md += fmt.Sprintf("![%s](charts/%s)\n\n", ch.title, ch.file)
		}
	}
	if _, err := os.Stat(filepath.Join(chartsDir(out), "soak-rss.svg")); err == nil {
		md += "Server memory over the soak run (`make bench-soak`, [SOAK.md](SOAK.md)):\n\n![server memory over the soak](charts/soak-rss.svg)\n\n"
	}
	if md == "" {
		return "", nil
	}
	return "\n## Charts\n\nSVG files in `charts/`, written by the same run (gonum.org/v1/plot).\n\n" + md, nil
}
