package put

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows an upload as it goes.
type progress interface {
	// update: rows and Arrow bytes sent so far, checkpoints committed.
	update(rows, bytes, checkpoints int64)
	// finish shows the final figures and ends the display.
	finish(rows, bytes, checkpoints int64)
	// abandon ends the display after a failure.
	abandon()
}

// quietProgress shows nothing (stderr is not a terminal, or --quiet).
type quietProgress struct{}

func (quietProgress) update(int64, int64, int64) {}
func (quietProgress) finish(int64, int64, int64) {}
func (quietProgress) abandon()                   {}

// barProgress is a progress bar on a terminal: a spinner (the total is
// not known in advance), rows, MB and MB/s of Arrow data sent, checkpoints
// committed, elapsed time.
type barProgress struct {
	bar  *progressbar.ProgressBar
	w    io.Writer
	last int64 // bytes shown so far
}

func newBarProgress(w io.Writer) *barProgress {
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetDescription(describeProgress(0, 0)),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetSpinnerChangeInterval(0), // redrawn by update: no goroutine of its own
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionUseANSICodes(true),
	)
	return &barProgress{bar: bar, w: w}
}

func describeProgress(rows, checkpoints int64) string {
	return fmt.Sprintf("%d rows, %d checkpoints committed", rows, checkpoints)
}

func (p *barProgress) update(rows, bytes, checkpoints int64) {
	p.bar.Describe(describeProgress(rows, checkpoints))
	_ = p.bar.Add64(bytes - p.last)
	p.last = bytes
}

func (p *barProgress) finish(rows, bytes, checkpoints int64) {
	p.update(rows, bytes, checkpoints)
	_ = p.bar.Finish()
	fmt.Fprintln(p.w)
}

func (p *barProgress) abandon() {
	_ = p.bar.Exit()
	fmt.Fprintln(p.w)
}
