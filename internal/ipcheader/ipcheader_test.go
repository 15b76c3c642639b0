package ipcheader_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightsink/flightsink/internal/ipcheader"
)

type message = ipcheader.Message

// writeStream writes recs as an IPC stream and splits it into messages.
func writeStream(t testing.TB, schema *arrow.Schema, opts []ipc.Option, recs ...arrow.RecordBatch) []message {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msgs, err := ipcheader.SplitStream(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func int64Batch(t testing.TB, rows int) (*arrow.Schema, arrow.RecordBatch) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := 0; i < rows; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
	}
	return schema, b.NewRecordBatch()
}

func TestReadRecordBatch(t *testing.T) {
	schema, rec := int64Batch(t, 1000)
	defer rec.Release()
	msgs := writeStream(t, schema, nil, rec)
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want schema + batch", len(msgs))
	}
	h, err := ipcheader.Read(msgs[0].Header, msgs[0].Body)
	if err != nil || h.Kind != ipcheader.KindSchema {
		t.Fatalf("schema message: %+v, %v", h, err)
	}
	h, err = ipcheader.Read(msgs[1].Header, msgs[1].Body)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != ipcheader.KindRecordBatch || h.Rows != 1000 || len(h.Nodes) != 1 || h.Nodes[0] != 1000 || h.Compressed {
		t.Fatalf("got %+v", h)
	}
	if h.DecodedBytes != 8000 { // no validity buffer, 1000 int64 values
		t.Fatalf("DecodedBytes %d, want 8000", h.DecodedBytes)
	}
}

func TestReadCompressed(t *testing.T) {
	schema, rec := int64Batch(t, 100_000)
	defer rec.Release()
	for _, opt := range []ipc.Option{ipc.WithZstd(), ipc.WithLZ4()} {
		msgs := writeStream(t, schema, []ipc.Option{opt}, rec)
		h, err := ipcheader.Read(msgs[1].Header, msgs[1].Body)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Compressed || h.DecodedBytes != 800_000 || int64(len(msgs[1].Body)) >= h.DecodedBytes {
			t.Fatalf("compressed: %+v (body %d bytes)", h, len(msgs[1].Body))
		}
		// A client may declare any uncompressed length: 8 GB here.
		forged := bytes.Clone(msgs[1].Body)
		for _, b := range h.Buffers {
			if b.Length > 0 {
				binary.LittleEndian.PutUint64(forged[b.Offset:], 8<<30)
			}
		}
		if h, err = ipcheader.Read(msgs[1].Header, forged); err != nil || h.DecodedBytes < 8<<30 {
			t.Fatalf("forged length: %+v, %v", h, err)
		}
	}
}

func TestReadRunEndEncodedAndDictionary(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	// a run-end encoded column: 3 values, 1,000,000 rows
	ree := arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String)
	rb := array.NewRunEndEncodedBuilder(mem, ree.RunEnds(), ree.Encoded())
	rb.Append(500_000)
	rb.ValueBuilder().(*array.StringBuilder).Append("a")
	rb.Append(500_000)
	rb.ValueBuilder().(*array.StringBuilder).Append("b")
	col := rb.NewArray()
	rb.Release()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: ree}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 1_000_000)
	defer rec.Release()
	msgs := writeStream(t, schema, nil, rec)
	h, err := ipcheader.Read(msgs[1].Header, msgs[1].Body)
	if err != nil {
		t.Fatal(err)
	}
	if h.Rows != 1_000_000 || len(h.Nodes) != 3 || h.Nodes[0] != 1_000_000 || h.Nodes[1] != 2 || h.Nodes[2] != 2 || h.DecodedBytes > 100 {
		t.Fatalf("run-end encoded: %+v", h)
	}

	// a dictionary column: its values come in a dictionary batch first
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	db := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
	for i := 0; i < 1000; i++ {
		if err := db.AppendString([]string{"x", "y", "z"}[i%3]); err != nil {
			t.Fatal(err)
		}
	}
	dcol := db.NewArray()
	db.Release()
	defer dcol.Release()
	dschema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}}, nil)
	drec := array.NewRecordBatch(dschema, []arrow.Array{dcol}, 1000)
	defer drec.Release()
	msgs = writeStream(t, dschema, nil, drec)
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want schema, dictionary, batch", len(msgs))
	}
	h, err = ipcheader.Read(msgs[1].Header, msgs[1].Body)
	if err != nil || h.Kind != ipcheader.KindDictionaryBatch || h.Rows != 3 || h.IsDelta {
		t.Fatalf("dictionary batch: %+v, %v", h, err)
	}
	h, err = ipcheader.Read(msgs[2].Header, msgs[2].Body)
	if err != nil || h.Kind != ipcheader.KindRecordBatch || h.Rows != 1000 {
		t.Fatalf("dictionary-encoded batch: %+v, %v", h, err)
	}
}

func TestReadMalformed(t *testing.T) {
	schema, rec := int64Batch(t, 10)
	defer rec.Release()
	msgs := writeStream(t, schema, nil, rec)
	for name, m := range map[string]message{
		"empty":          {nil, nil},
		"short":          {[]byte{1, 2, 3, 4, 5, 6, 7, 8}, nil},
		"truncated":      {msgs[1].Header[:len(msgs[1].Header)/2], msgs[1].Body},
		"body too short": {msgs[1].Header, msgs[1].Body[:4]},
		"garbage":        {bytes.Repeat([]byte{0xff}, 64), nil},
	} {
		if _, err := ipcheader.Read(m.Header, m.Body); !errors.Is(err, ipcheader.ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzRead: no header or body makes Read panic, and what it accepts is
// consistent: lengths are never negative.
func FuzzRead(f *testing.F) {
	schema, rec := int64Batch(f, 100)
	defer rec.Release()
	for _, opts := range [][]ipc.Option{nil, {ipc.WithZstd()}} {
		for _, m := range writeStream(f, schema, opts, rec) {
			f.Add(m.Header, m.Body)
		}
	}
	f.Fuzz(func(t *testing.T, header, body []byte) {
		h, err := ipcheader.Read(header, body)
		if err != nil {
			return
		}
		if h.Rows < 0 || h.DecodedBytes < 0 {
			t.Fatalf("negative declaration accepted: %+v", h)
		}
		for _, n := range h.Nodes {
			if n < 0 {
				t.Fatalf("negative node length accepted: %+v", h)
			}
		}
	})
}
