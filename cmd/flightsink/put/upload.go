package put

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flightsink/flightsink/clients/go/fsclient"
)

// upload is one run of put: the inputs, in order, as one stream.
type upload struct {
	o       options
	sources []*source
	schema  *arrow.Schema // the stream's
	bar     progress
	summary io.Writer

	w         *fsclient.Writer
	ready     fsclient.Ready
	sent      int64 // rows sent by this run
	bytes     int64 // Arrow buffer bytes sent
	sinceMark int64 // rows sent since the last checkpoint marker
	marked    int64 // the last checkpoint marked, 0 before any
	start     time.Time
}

// run opens the stream, skips what a resumed writer committed, sends every
// row with pipelined checkpoints, and closes the stream.
func (u *upload) run(ctx context.Context, c *fsclient.Client) error {
	u.start = time.Now()
	// The stream outlives an interrupt (ctx): put aborts it itself, so the
	// server is told why.
	w, err := c.Open(context.WithoutCancel(ctx), u.o.desc, u.schema)
	if err != nil {
		return fmt.Errorf("put: opening the stream to %s: %w%s", u.o.server, err, openHint(err))
	}
	u.w, u.ready = w, w.Ready()
	skip := u.ready.CommittedRows
	if skip > 0 {
		for _, s := range u.sources {
			if s.stdin {
				u.abort("stdin cannot be replayed")
				return fmt.Errorf("put: writer %q has already committed %d rows, and stdin cannot be replayed to skip them: "+
					"name the files instead of -, or use a new --writer-id", u.ready.WriterID, skip)
			}
		}
	}
	for _, s := range u.sources {
		if skip, err = u.send(ctx, s, skip); err != nil {
			return u.fail(ctx, err)
		}
	}
	if skip > 0 {
		u.abort("the inputs hold fewer rows than were committed")
		return fmt.Errorf("put: writer %q has committed %d rows, but %s hold only %d: not the same inputs, or not in the same order? "+
			"Nothing was written", u.ready.WriterID, u.ready.CommittedRows, describeSources(u.sources), u.ready.CommittedRows-skip)
	}
	if err := ctx.Err(); err != nil { // interrupted while reading the last input: no clean end
		return u.fail(ctx, err)
	}
	done, err := w.Close(context.WithoutCancel(ctx)) // the clean end is sent: wait for its outcome
	if err != nil {
		return u.fail(ctx, err)
	}
	u.bar.finish(u.sent, u.bytes, done.LastCheckpoint-u.ready.LastCheckpoint)
	u.report(done)
	return nil
}

// send writes one input's rows after skipping skip of them; it returns the
// rows still to skip.
func (u *upload) send(ctx context.Context, s *source, skip int64) (int64, error) {
	if s.rows >= 0 && skip >= s.rows { // committed whole: not even read
		return skip - s.rows, nil
	}
	var read int64
	for {
		if err := ctx.Err(); err != nil {
			return skip, err
		}
		rec, err := s.next()
		if err != nil {
			return skip, readError(s, read, int64(u.o.batchRows), err)
		}
		if rec == nil {
			return skip, nil
		}
		rows := rec.NumRows()
		read += rows
		if skip >= rows {
			skip -= rows
			rec.Release()
			continue
		}
		if skip > 0 {
			part := rec.NewSlice(skip, rows)
			rec.Release()
			rec, skip = part, 0
		}
		err = u.write(ctx, rec)
		rec.Release()
		if err != nil {
			return 0, err
		}
	}
}

// readError names where reading s failed, read rows in: JSON lines hand
// over the rows before a bad one, CSV fails the batch holding it.
func readError(s *source, read, batchRows int64, err error) error {
	var unknown *unknownKeyError
	switch {
	case errors.As(err, &unknown): // names its line
		return fmt.Errorf("put: %s: %w", s.name, err)
	case s.format == formatJSONL:
		return fmt.Errorf("put: %s: row %d: %w", s.name, read+1, err)
	case s.format == formatCSV:
		return fmt.Errorf("put: %s: a row among rows %d-%d: %w", s.name, read+1, read+batchRows, err)
	}
	return fmt.Errorf("put: %s: reading the rows after row %d: %w", s.name, read, err)
}

// write sends rec in pieces that end at checkpoint boundaries, marking a
// checkpoint every --checkpoint-rows rows and waiting while more than
// --checkpoints-in-flight are unacknowledged.
func (u *upload) write(ctx context.Context, rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(u.schema) { // same columns (checked at open), other nullability or metadata
		rec = array.NewRecordBatch(u.schema, rec.Columns(), rec.NumRows())
		defer rec.Release()
	}
	rows, size := rec.NumRows(), batchBytes(rec)
	for off := int64(0); off < rows; {
		n := min(rows-off, u.o.checkpointRows-u.sinceMark)
		whole := off == 0 && n == rows
		piece := rec
		if !whole {
			piece = rec.NewSlice(off, off+n)
		}
		err := u.w.Write(piece)
		if !whole {
			piece.Release()
		}
		if err != nil {
			return err
		}
		off += n
		u.sent += n
		u.bytes += size * n / rows
		u.sinceMark += n
		if u.sinceMark == u.o.checkpointRows {
			if err := u.mark(ctx); err != nil {
				return err
			}
		}
		u.bar.update(u.sent, u.bytes, u.w.Acked().Checkpoint-u.ready.LastCheckpoint)
	}
	return nil
}

// mark sends a checkpoint marker and keeps at most --checkpoints-in-flight
// unacknowledged.
func (u *upload) mark(ctx context.Context) error {
	n, err := u.w.MarkCheckpoint()
	if err != nil {
		return err
	}
	u.marked, u.sinceMark = n, 0
	if wait := n - u.o.inflight; wait > u.ready.LastCheckpoint {
		_, err = u.w.WaitCheckpoint(ctx, wait)
	}
	return err
}

// batchBytes is the size of rec's buffers (a slice counts its whole
// buffers).
func batchBytes(rec arrow.RecordBatch) int64 {
	var n int64
	var data func(d arrow.ArrayData)
	data = func(d arrow.ArrayData) {
		for _, b := range d.Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
		for _, c := range d.Children() {
			data(c)
		}
	}
	for _, col := range rec.Columns() {
		data(col.Data())
	}
	return n
}

// abort ends the stream so that nothing after the last acknowledged
// checkpoint is committed.
func (u *upload) abort(reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = u.w.Abort(ctx, reason)
}

// fail aborts the stream after err and says what is committed and whether
// a re-run can resume.
func (u *upload) fail(ctx context.Context, err error) error {
	retry := "once the input is fixed, a re-run" // put's own failure: reading an input
	var fe *fsclient.Error
	switch {
	case ctx.Err() != nil:
		err, retry = errors.New("put: interrupted"), "a re-run"
	case errors.As(err, &fe) && fe.Retryable():
		retry = "the failure is retryable: a re-run"
	case errors.As(err, &fe):
		retry = "once the cause is fixed, a re-run"
	}
	if !errors.As(err, &fe) { // the stream is still open: end it without committing its tail
		u.abort(err.Error())
	}
	u.bar.abandon()
	committed := u.ready.CommittedRows + u.w.Acked().TotalRows
	if errors.As(err, &fe) {
		err = fmt.Errorf("put: the server ended the stream: %w", err)
	}
	return fmt.Errorf("%w\n%s", err, u.committedHint(retry, committed))
}

// committedHint says what is in Kafka after a failure and what a re-run
// does ("<retry> of the same command resumes after them").
func (u *upload) committedHint(retry string, committed int64) string {
	stdin := false
	for _, s := range u.sources {
		stdin = stdin || s.stdin
	}
	switch {
	case u.o.desc.WriterID == "":
		return fmt.Sprintf("%d rows are committed in Kafka; without --writer-id a re-run writes them again", committed)
	case stdin:
		return fmt.Sprintf("writer %q has committed %d rows; stdin cannot be replayed, so a re-run cannot resume", u.o.desc.WriterID, committed)
	}
	return fmt.Sprintf("writer %q has committed %d rows; %s of the same command resumes after them", u.o.desc.WriterID, committed, retry)
}

// openHint says whether a failure to open the stream is worth a retry.
func openHint(err error) string {
	var fe *fsclient.Error
	if errors.As(err, &fe) && fe.Retryable() {
		return " (retryable: nothing was written; try again)"
	}
	return ""
}

// report prints the one-line summary.
func (u *upload) report(done fsclient.Done) {
	elapsed := time.Since(u.start)
	mbps := float64(u.bytes) / 1e6 / max(elapsed.Seconds(), 1e-3)
	line := fmt.Sprintf("put: %d rows to %s in %s (%.1f MB/s of Arrow data), %d checkpoints committed",
		u.sent, u.o.desc.Topic, elapsed.Round(time.Millisecond), mbps, done.LastCheckpoint-u.ready.LastCheckpoint)
	if u.ready.CommittedRows > 0 {
		line += fmt.Sprintf("; skipped the %d rows writer %q had committed", u.ready.CommittedRows, u.ready.WriterID)
	}
	if done.SkippedRows+done.DeadLetteredRows > 0 {
		line += fmt.Sprintf("; bad rows: %d skipped, %d dead-lettered", done.SkippedRows, done.DeadLetteredRows)
	}
	if done.DiscardedRows > 0 {
		line += fmt.Sprintf("; %d rows after the last checkpoint discarded (--commit-on-close=false)", done.DiscardedRows)
	}
	fmt.Fprintln(u.summary, line)
}
