package put

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// inputFormat is the format of one input of put.
type inputFormat string

// The formats put reads.
const (
	formatParquet     inputFormat = "parquet"
	formatArrowFile   inputFormat = "arrow"  // Arrow IPC file (random access, "ARROW1" magic)
	formatArrowStream inputFormat = "arrows" // Arrow IPC stream
	formatCSV         inputFormat = "csv"    // with a header line
	formatJSONL       inputFormat = "jsonl"  // one JSON object per line
	formatAuto        inputFormat = ""       // by extension, else by content
	formatsList                   = "parquet, arrow (IPC file), arrows (IPC stream), csv, jsonl"
)

var (
	arrowFileMagic   = []byte("ARROW1")
	arrowStreamMagic = []byte{0xff, 0xff, 0xff, 0xff}
	parquetMagic     = []byte("PAR1")
)

// parseInputFormat checks a --format value.
func parseInputFormat(s string) (inputFormat, error) {
	switch f := inputFormat(strings.ToLower(s)); f {
	case formatParquet, formatArrowFile, formatArrowStream, formatCSV, formatJSONL, formatAuto:
		return f, nil
	case "ipc", "feather":
		return formatArrowFile, nil
	case "json", "ndjson":
		return formatJSONL, nil
	}
	return "", fmt.Errorf("put: --format %q is not one of %s", s, formatsList)
}

// byExtension is the format a file name says, formatAuto when it says none
// (.arrow, .feather and .ipc are sniffed: file or stream).
func byExtension(name string) inputFormat {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".parquet", ".pq":
		return formatParquet
	case ".arrows":
		return formatArrowStream
	case ".csv":
		return formatCSV
	case ".jsonl", ".ndjson", ".json":
		return formatJSONL
	}
	return formatAuto
}

// sniff is the format the first bytes show; formatAuto when they show none.
func sniff(head []byte) inputFormat {
	switch trimmed := bytes.TrimLeft(head, " \t\r\n"); {
	case bytes.HasPrefix(head, arrowFileMagic):
		return formatArrowFile
	case bytes.HasPrefix(head, arrowStreamMagic):
		return formatArrowStream
	case bytes.HasPrefix(head, parquetMagic):
		return formatParquet
	case bytes.HasPrefix(trimmed, []byte("{")):
		return formatJSONL
	case len(trimmed) > 0:
		return formatCSV
	}
	return formatAuto
}

// readOptions say how put reads its inputs.
type readOptions struct {
	format     inputFormat   // --format; formatAuto by name and content
	schema     *arrow.Schema // --schema for CSV and JSON lines; nil to infer
	inferRows  int           // rows sampled to infer a CSV or JSON-lines schema
	batchRows  int           // rows per batch read from CSV, JSON lines and Parquet
	csvComma   rune
	mem        memory.Allocator
	stdin      io.Reader
	stdinLabel string
}

// source is one input, open: its batches in order.
type source struct {
	name   string // the path, or "stdin"
	format inputFormat
	stdin  bool
	rows   int64 // the rows its metadata declares (Parquet, Arrow file); -1 when unknown
	schema *arrow.Schema
	next   func() (arrow.RecordBatch, error) // the next batch (the caller releases it); nil, nil at the end
	close  func()
}

// openSource opens path ("-" for stdin) and reads as much as it takes to
// know its schema. A CSV or JSON-lines source takes want (the schema of the
// sources before it) when it is not nil.
func openSource(ctx context.Context, path string, o readOptions, want *arrow.Schema) (*source, error) {
	s := &source{name: path, rows: -1, close: func() {}}
	var r *bufio.Reader
	format := o.format
	if path == "-" {
		s.name, s.stdin = o.stdinLabel, true
		r = bufio.NewReaderSize(o.stdin, 1<<16)
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("put: %w", err)
		}
		if st, err := f.Stat(); err == nil && st.IsDir() {
			f.Close()
			return nil, fmt.Errorf("put: %s is a directory; name the files in it", path)
		}
		s.close = func() { f.Close() }
		if format == formatAuto {
			format = byExtension(path)
		}
		if format == formatAuto || format == formatArrowFile {
			head := make([]byte, 8)
			n, _ := io.ReadFull(f, head)
			if format = sniff(head[:n]); format == formatAuto {
				f.Close()
				return nil, fmt.Errorf("put: %s: empty, or its format is not recognised; pass --format (%s)", path, formatsList)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("put: %s: %w", path, err)
			}
		}
		if err := openSeekable(ctx, s, f, format, o); err != nil || s.next != nil {
			if err != nil {
				f.Close()
			}
			return s, err
		}
		r = bufio.NewReaderSize(f, 1<<16)
	}
	if format == formatAuto {
		head, _ := r.Peek(8)
		if format = sniff(head); format == formatAuto {
			s.close()
			return nil, fmt.Errorf("put: %s: empty, or its format is not recognised; pass --format (%s)", s.name, formatsList)
		}
	}
	s.format = format
	var err error
	switch format {
	case formatParquet, formatArrowFile:
		err = fmt.Errorf("put: %s: %s needs seeking (its metadata is at the end of the file), which stdin cannot do; "+
			"pass the file's path instead of -", s.name, map[inputFormat]string{formatParquet: "Parquet", formatArrowFile: "an Arrow IPC file"}[format])
	case formatArrowStream:
		err = openIPCStream(s, r, o)
	case formatCSV:
		err = openCSV(s, r, o, want)
	case formatJSONL:
		err = openJSONL(s, r, o, want)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// openSeekable opens the formats that read a file by offset (Parquet,
// Arrow IPC file); it leaves s.next nil for the others.
func openSeekable(ctx context.Context, s *source, f *os.File, format inputFormat, o readOptions) error {
	s.format = format
	switch format {
	case formatParquet:
		pf, err := file.NewParquetReader(f)
		if err != nil {
			return fmt.Errorf("put: %s: not a readable Parquet file: %w", s.name, err)
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(o.batchRows)}, o.mem)
		if err != nil {
			return fmt.Errorf("put: %s: %w", s.name, err)
		}
		rr, err := fr.GetRecordReader(ctx, nil, nil)
		if err != nil {
			return fmt.Errorf("put: %s: %w", s.name, err)
		}
		s.rows, s.schema = pf.NumRows(), rr.Schema()
		s.next = readerNext(rr)
		s.close = func() { rr.Release(); f.Close() }
	case formatArrowFile:
		fr, err := ipc.NewFileReader(f, ipc.WithAllocator(o.mem))
		if err != nil {
			return fmt.Errorf("put: %s: not a readable Arrow IPC file: %w", s.name, err)
		}
		s.schema = fr.Schema()
		i := 0
		s.next = func() (arrow.RecordBatch, error) {
			if i >= fr.NumRecords() {
				return nil, nil
			}
			i++
			return fr.RecordBatchAt(i - 1)
		}
		s.close = func() { fr.Close(); f.Close() }
	}
	return nil
}

func openIPCStream(s *source, r io.Reader, o readOptions) error {
	rr, err := ipc.NewReader(r, ipc.WithAllocator(o.mem))
	if err != nil {
		return fmt.Errorf("put: %s: not a readable Arrow IPC stream: %w", s.name, err)
	}
	s.schema, s.next = rr.Schema(), readerNext(rr)
	prev := s.close
	s.close = func() { rr.Release(); prev() }
	return nil
}

func openCSV(s *source, r io.Reader, o readOptions, want *arrow.Schema) error {
	given := o.schema
	if given == nil {
		given = want
	}
	schema, replay, err := sampleCSV(s.name, r, o.csvComma, o.inferRows, given)
	if err != nil {
		return err
	}
	rr, err := newCSVReader(replay, schema, o)
	if err != nil {
		return fmt.Errorf("put: %s: %w", s.name, err)
	}
	s.schema, s.next = schema, readerNext(rr)
	prev := s.close
	s.close = func() { rr.Release(); prev() }
	return nil
}

// newCSVReader is arrow-go's CSV reader with put's options; a schema it
// cannot read (nested types, from an input before it) is an error, not its
// panic.
func newCSVReader(r io.Reader, schema *arrow.Schema, o readOptions) (rr *csv.Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("CSV cannot hold the columns of the inputs before it: %v", p)
		}
	}()
	return csv.NewReader(r, schema, csv.WithHeader(true), csv.WithComma(o.csvComma), csv.WithChunk(o.batchRows),
		csv.WithAllocator(o.mem), csv.WithNullReader(false, csvNulls...)), nil
}

func openJSONL(s *source, r io.Reader, o readOptions, want *arrow.Schema) error {
	schema := o.schema
	if schema == nil {
		schema = want
	}
	replay, why := r, "the first input's"
	if schema == nil {
		var err error
		if schema, replay, err = inferJSONL(s.name, r, o.inferRows); err != nil {
			return err
		}
		why = fmt.Sprintf("inferred from the first %d lines", o.inferRows)
	}
	// keys beyond an inferred schema would be dropped: they are refused
	check := newJSONKeyCheck(replay, schema, why, o.schema == nil)
	rr := array.NewJSONReader(check, schema, array.WithChunk(o.batchRows), array.WithAllocator(o.mem))
	next := readerNext(rr)
	s.schema = schema
	s.next = func() (arrow.RecordBatch, error) {
		rec, err := next()
		if rec == nil && err == nil { // the reader's end: its input's end, or an error there
			err = check.failure()
		}
		return rec, err
	}
	prev := s.close
	s.close = func() { rr.Release(); prev() }
	return nil
}

// readerNext turns a RecordReader into a source's next: each batch is the
// caller's to release; a batch read with an error is not returned (the CSV
// reader fills the values it could not parse with nulls).
func readerNext(rr array.RecordReader) func() (arrow.RecordBatch, error) {
	return func() (arrow.RecordBatch, error) {
		if !rr.Next() {
			return nil, rr.Err()
		}
		if err := rr.Err(); err != nil {
			return nil, err
		}
		rec := rr.RecordBatch()
		rec.Retain()
		return rec, nil
	}
}

// errSchemaDiffers is returned when an input's schema is not the first's.
var errSchemaDiffers = errors.New("schema differs")

// compareSchemas says how got (of name) differs from want (of first):
// columns by position, name and type; nullability and metadata are not
// compared.
func compareSchemas(name string, got *arrow.Schema, first string, want *arrow.Schema) error {
	if got.NumFields() != want.NumFields() {
		return fmt.Errorf("put: %s: %w from %s's: %d columns (%s), %s has %d (%s); the inputs of one put must have the same columns",
			name, errSchemaDiffers, first, got.NumFields(), fieldNames(got), first, want.NumFields(), fieldNames(want))
	}
	for i := range got.NumFields() {
		g, w := got.Field(i), want.Field(i)
		if g.Name != w.Name || !arrow.TypeEqual(g.Type, w.Type) {
			return fmt.Errorf("put: %s: %w from %s's: column %d is %q %s, in %s %q %s",
				name, errSchemaDiffers, first, i+1, g.Name, g.Type, first, w.Name, w.Type)
		}
	}
	return nil
}

func fieldNames(s *arrow.Schema) string {
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
