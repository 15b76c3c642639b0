package flightsink

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// produce turns a batch into records and hands them to the writer, one
// chunk (plan.chunkBytes) at a time, so what a batch expands into never has
// to fit in memory at once. A bad row rejects its batch: an exactly-once
// stream then fails and its transaction, with any chunk of the batch
// already produced, is aborted; an at-least-once batch of more than one
// chunk is checked whole before any of it is produced (its second chunk
// kept, longer batches encoded once without producing), so nothing of a
// rejected batch reaches Kafka.
func (st *stream) produce(rec arrow.RecordBatch, unit int64) error {
	if st.bind != nil {
		bound, err := st.bind.bindBatch(rec)
		if err != nil {
			return err
		}
		defer bound.Release()
		rec = bound
	}
	size := batchBytes(rec)
	st.srv.metrics.BatchIn(rec.NumRows(), size)
	if size > st.srv.cfg.MaxBatchBytes {
		return newError(codes.ResourceExhausted, ReasonBatchTooLarge,
			"record batch %d is %d bytes decoded, over flight.max_batch_bytes (%d); send smaller batches",
			st.batches, size, st.srv.cfg.MaxBatchBytes)
	}
	if err := st.checkTransactionLimits(rec.NumRows()); err != nil {
		return err
	}
	st.batches++
	batch := st.batches - 1
	if err := st.plan.Bind(rec); err != nil {
		return badStream("record batch %d does not match the stream's schema: %v", batch, err)
	}
	if err := st.resolveTopics(batch); err != nil {
		return err
	}
	rows, now := int(rec.NumRows()), time.Now()
	first, next, err := st.plan.Encode(rows, 0, st.rows, unit, now)
	if err != nil {
		return st.rowError(batch, err)
	}
	bad := make([]sinkapi.RowError, 0, len(first.Rejected()))
	bad = append(bad, first.Rejected()...)
	// An at-least-once batch is checked whole before any of it is sent
	// (nothing of a rejected batch is produced). A batch of two chunks keeps
	// its second; a longer one is checked reusing one chunk's memory, then
	// encoded again as it is sent, so at most two chunks are held at once.
	var second sinkapi.Chunk
	if next < rows && st.delivery != ExactlyOnce {
		chunk, from, err := st.plan.Encode(rows, next, st.rows, unit, now)
		if err != nil {
			first.Recycle()
			return st.rowError(batch, err)
		}
		bad = append(bad, chunk.Rejected()...)
		if from >= rows {
			second = chunk
		} else {
			chunk.Recycle()
		}
		for from < rows {
			if chunk, from, err = st.plan.Encode(rows, from, st.rows, unit, now); err != nil {
				first.Recycle()
				return st.rowError(batch, err)
			}
			bad = append(bad, chunk.Rejected()...)
			chunk.Recycle()
		}
	}
	// Known whole here unless an exactly-once batch spans chunks (then its
	// transaction is aborted if the rest adds too many).
	if err := st.checkBadRows(batch, rows, bad); err != nil {
		first.Recycle()
		if second != nil {
			second.Recycle()
		}
		return err
	}
	for from := next; ; {
		if err := st.ckpt.send(first); err != nil {
			if second != nil {
				second.Recycle()
			}
			return err
		}
		if from >= rows {
			break
		}
		if second != nil {
			first, from, second = second, rows, nil
			continue
		}
		if first, from, err = st.plan.Encode(rows, from, st.rows, unit, now); err != nil {
			return st.rowError(batch, err)
		}
		if st.delivery == ExactlyOnce {
			bad = append(bad, first.Rejected()...)
		}
	}
	if err := st.checkBadRows(batch, rows, bad); err != nil {
		return err
	}
	if st.desc.OnBadRow == sinkapi.BadRowSkip {
		st.skipped += int64(len(bad))
	} else {
		st.deadLettered += int64(len(bad))
	}
	st.rows += int64(rows)
	return nil
}

// checkBadRows fails the stream when a batch's bad rows (left out under
// its bad-row policy) make more than max_bad_rows: a count, or a fraction
// of the rows read so far.
func (st *stream) checkBadRows(batch int64, rows int, bad []sinkapi.RowError) error {
	max := st.desc.MaxBadRows
	if max == 0 || len(bad) == 0 {
		return nil
	}
	total := st.skipped + st.deadLettered + int64(len(bad))
	limit := max
	if max < 1 {
		limit = max * float64(st.rows+int64(rows))
	}
	if float64(total) <= limit {
		return nil
	}
	last := bad[len(bad)-1]
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadRow, Msg: fmt.Sprintf(
		"%d bad rows, more than max_bad_rows (%v) allows; the last: stream row %d (batch %d, row %d): %s",
		total, max, st.rows+int64(last.Row), batch, last.Row, last.Problem)}
}
