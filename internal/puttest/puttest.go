// Package puttest writes the input files the tests of flightsink put read:
// rows of one small schema (id i, name "n<i>", amount i.5) in each input
// format put takes. It is for tests only.
package puttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Format is a format Write writes, named as put's --format names it.
type Format string

// The formats of test inputs.
const (
	Parquet     Format = "parquet"
	ArrowFile   Format = "arrow"  // Arrow IPC file
	ArrowStream Format = "arrows" // Arrow IPC stream
	CSV         Format = "csv"    // with a header line
	JSONL       Format = "jsonl"  // one JSON object per line
)

// Schema is the schema of the test rows: id int64, name string, amount
// float64.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// Rows returns rows first..first+n-1 as one record batch allocated from
// mem: id i, name "n<i>", amount i.5. The caller releases it.
func Rows(mem memory.Allocator, first, n int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, Schema)
	defer b.Release()
	for i := first; i < first+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(i)
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("n%d", i))
		b.Field(2).(*array.Float64Builder).Append(float64(i) + 0.5)
	}
	return b.NewRecordBatch()
}

// Value is the JSON record value flightsink makes of row i
// (docs/json-mapping.md), which is also row i's line in JSONL.
func Value(i int64) string { return fmt.Sprintf(`{"id":%d,"name":"n%d","amount":%d.5}`, i, i, i) }

// Write writes rows first..first+n-1 to dir/name in format and returns the
// path. Parquet holds row groups of at most batch rows and the Arrow
// formats record batches of batch rows; CSV and JSONL are text. Every
// buffer it allocates is released, which a checked allocator verifies.
func Write(t testing.TB, dir, name string, format Format, first, n, batch int64) string {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	path := filepath.Join(dir, name)
	if format == CSV || format == JSONL {
		var b strings.Builder
		if format == CSV {
			b.WriteString("id,name,amount\n")
		}
		for i := first; i < first+n; i++ {
			if format == CSV {
				fmt.Fprintf(&b, "%d,n%d,%d.5\n", i, i, i)
			} else {
				b.WriteString(Value(i) + "\n")
			}
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var write func(arrow.RecordBatch) error
	var finish func() error
	switch format {
	case Parquet:
		w, err := pqarrow.NewFileWriter(Schema, f, parquet.NewWriterProperties(parquet.WithAllocator(mem),
			parquet.WithMaxRowGroupLength(batch)), pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem)))
		if err != nil {
			t.Fatal(err)
		}
		write, finish = w.Write, w.Close
	case ArrowFile:
		w, err := ipc.NewFileWriter(f, ipc.WithSchema(Schema), ipc.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		write, finish = w.Write, w.Close
	case ArrowStream:
		w := ipc.NewWriter(f, ipc.WithSchema(Schema), ipc.WithAllocator(mem))
		write, finish = w.Write, w.Close
	default:
		t.Fatalf("puttest.Write: unknown format %q", format)
	}
	for off := first; off < first+n; off += batch {
		rec := Rows(mem, off, min(batch, first+n-off))
		err := write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	return path
}
