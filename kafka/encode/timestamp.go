package encode

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// Timestamp extracts a Kafka record timestamp, in Unix milliseconds, from a
// timestamp column of any unit and time zone. A null value means "no
// timestamp": the caller falls back to the produce time.
type Timestamp struct {
	col   int
	typ   arrow.DataType
	nulls validity
	vals  []int64
	mul   int64 // seconds: ticks are multiplied by 1000
	div   int64 // sub-millisecond units: ticks are floor-divided
}

// NewTimestamp builds a timestamp extractor for the column called field.
// It returns a *FieldError when the column is missing or not a timestamp.
func NewTimestamp(schema *arrow.Schema, field string) (*Timestamp, error) {
	col, err := lookupColumn(schema, field)
	if err != nil {
		return nil, err
	}
	typ := schema.Field(col).Type
	ts, ok := typ.(*arrow.TimestampType)
	if !ok {
		return nil, &FieldError{Field: field, Reason: fmt.Sprintf("unsupported timestamp type %s (want a timestamp column)", typ)}
	}
	t := &Timestamp{col: col, typ: typ, mul: 1, div: 1}
	switch ts.Unit {
	case arrow.Second:
		t.mul = 1000
	case arrow.Microsecond:
		t.div = 1000
	case arrow.Nanosecond:
		t.div = 1_000_000
	}
	return t, nil
}

// Bind points the extractor at rec's timestamp column. rec must have the
// schema given to NewTimestamp (JSON.Bind checks that); Bind panics if the
// column's type differs. rec is not retained.
func (t *Timestamp) Bind(rec arrow.RecordBatch) {
	arr := rec.Column(t.col)
	if !arrow.TypeEqual(arr.DataType(), t.typ) {
		panic(fmt.Sprintf("encode: Timestamp.Bind: column %d is %s, want %s", t.col, arr.DataType(), t.typ))
	}
	t.nulls.set(arr)
	t.vals = values[int64](arr)
}

// Millis returns the timestamp of row in Unix milliseconds, rounded down
// (also before 1970). ok is false when the value is null. Second-unit
// values beyond the int64 millisecond range saturate.
func (t *Timestamp) Millis(row int) (ms int64, ok bool) {
	if t.nulls.null(row) {
		return 0, false
	}
	v := t.vals[row]
	switch {
	case t.div > 1:
		ms, _ = floorDivMod(v, t.div)
		return ms, true
	case t.mul > 1:
		switch {
		case v > math.MaxInt64/1000:
			return math.MaxInt64, true
		case v < math.MinInt64/1000:
			return math.MinInt64, true
		}
		return v * 1000, true
	}
	return v, true
}
