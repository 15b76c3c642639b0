// Package benchdata builds the benchmark datasets, stores them as Arrow IPC
// files that every contender (Go and Python) reads, and holds the small
// helpers the benchmark programs share: /proc readings and the result line.
package benchdata

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightsink/flightsink/kafka/encode"
)

// Version changes whenever the generated data changes, so cached files of an
// older generator are not reused.
const Version = 1

// Every dataset is keyed by its "user" column and timestamped by its "ts"
// column, in every contender.
const (
	KeyField       = "user"
	TimestampField = "ts"
)

// Meta describes a generated dataset file (stored next to it as .json).
type Meta struct {
	Version        int    `json:"version"`
	Dataset        string `json:"dataset"`
	Rows           int64  `json:"rows"`
	BatchRows      int    `json:"batch_rows"`
	Batches        int    `json:"batches"`
	Columns        int    `json:"columns"`
	KeyField       string `json:"key_field"`
	TimestampField string `json:"timestamp_field"`
	// ValueBytes and KeyBytes are the record values and keys flightsink
	// makes of the whole dataset (computed with its own encoder).
	ValueBytes int64  `json:"value_bytes"`
	KeyBytes   int64  `json:"key_bytes"`
	FileBytes  int64  `json:"file_bytes"`
	Schema     string `json:"schema"`
}

// Datasets are the names Generate knows.
var Datasets = []string{"narrow", "wide"}

// Ensure returns the dataset file under dir for (name, rows, batchRows),
// generating it when it is missing or stale.
func Ensure(dir, name string, rows int64, batchRows int) (string, Meta, error) {
	path := filepath.Join(dir, fmt.Sprintf("%s-v%d-%d-%d.arrow", name, Version, rows, batchRows))
	if m, err := ReadMeta(path); err == nil && m.Version == Version && m.Rows == rows && m.BatchRows == batchRows {
		if st, err := os.Stat(path); err == nil && st.Size() == m.FileBytes {
			return path, m, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", Meta{}, err
	}
	m, err := generate(path, name, rows, batchRows)
	return path, m, err
}

// ReadMeta reads the .json next to a dataset file.
func ReadMeta(path string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

func generate(path, name string, rows int64, batchRows int) (Meta, error) {
	var g generator
	switch name {
	case "narrow":
		g = newNarrow()
	case "wide":
		g = newWide()
	default:
		if strings.HasPrefix(name, "columns") {
			c, err := newColumns(name)
			if err != nil {
				return Meta{}, err
			}
			g = c
			break
		}
		return Meta{}, fmt.Errorf("unknown dataset %q (want narrow or wide)", name)
	}
	schema := g.schema()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return Meta{}, err
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := ipc.NewFileWriter(bw, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		f.Close()
		return Meta{}, err
	}
	enc, err := encode.NewJSON(schema)
	if err != nil {
		f.Close()
		return Meta{}, fmt.Errorf("flightsink's encoder refuses the %s schema: %w", name, err)
	}
	key, err := encode.NewKey(schema, KeyField)
	if err != nil {
		f.Close()
		return Meta{}, err
	}
	m := Meta{Version: Version, Dataset: name, Rows: rows, BatchRows: batchRows, Columns: schema.NumFields(),
		KeyField: KeyField, TimestampField: TimestampField, Schema: schema.String()}
	r := rand.New(rand.NewPCG(uint64(len(name)), 20261125))
	var buf []byte
	for first := int64(0); first < rows; first += int64(batchRows) {
		n := int(min(int64(batchRows), rows-first))
		rec := g.batch(r, first, n)
		if err := enc.Bind(rec); err != nil {
			f.Close()
			return Meta{}, err
		}
		key.Bind(rec)
		for i := 0; i < n; i++ {
			buf = enc.AppendRow(buf[:0], i)
			m.ValueBytes += int64(len(buf))
			buf, _ = key.AppendKey(buf[:0], i)
			m.KeyBytes += int64(len(buf))
		}
		if err := w.Write(rec); err != nil {
			f.Close()
			return Meta{}, err
		}
		rec.Release()
		m.Batches++
	}
	if err := w.Close(); err != nil {
		f.Close()
		return Meta{}, err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return Meta{}, err
	}
	if err := f.Close(); err != nil {
		return Meta{}, err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return Meta{}, err
	}
	m.FileBytes = st.Size()
	if err := os.Rename(tmp, path); err != nil {
		return Meta{}, err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return m, os.WriteFile(path+".json", b, 0o644)
}

// Load reads every record batch of a dataset file into memory.
func Load(path string) (*arrow.Schema, []arrow.RecordBatch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	out := make([]arrow.RecordBatch, 0, r.NumRecords())
	for i := 0; i < r.NumRecords(); i++ {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, rec)
	}
	return r.Schema(), out, nil
}

type generator interface {
	schema() *arrow.Schema
	batch(r *rand.Rand, first int64, n int) arrow.RecordBatch
}

// tsStart is the first row's timestamp; rows are 1 ms apart, so even 10
// million rows stay months in the past (Kafka refuses timestamps more than
// message.timestamp.after.max.ms, one hour by default, in the future).
var tsStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func appendUser(b []byte, r *rand.Rand) []byte {
	b = append(b, "user_"...)
	return strconv.AppendInt(b, int64(r.IntN(100_000)), 10)
}

// dictOf builds a fixed dictionary shared by every batch (the IPC file
// format cannot replace dictionaries between batches).
func dictOf(words []string) arrow.Array {
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(words, nil)
	return b.NewArray()
}

func dictColumn(dt *arrow.DictionaryType, dict arrow.Array, idx []int32) arrow.Array {
	ib := array.NewInt32Builder(memory.DefaultAllocator)
	defer ib.Release()
	ib.AppendValues(idx, nil)
	indices := ib.NewArray()
	defer indices.Release()
	return array.NewDictionaryArray(dt, indices, dict)
}

// ---------------------------------------------------------------- narrow

var categories = []string{"books", "electronics", "garden", "grocery", "toys", "sports", "fashion", "health"}

type narrow struct {
	sch  *arrow.Schema
	dt   *arrow.DictionaryType
	dict arrow.Array
}

func newNarrow() *narrow {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	return &narrow{dt: dt, dict: dictOf(categories), sch: arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "category", Type: dt},
	}, nil)}
}

func (g *narrow) schema() *arrow.Schema { return g.sch }

func (g *narrow) batch(r *rand.Rand, first int64, n int) arrow.RecordBatch {
	mem := memory.DefaultAllocator
	ids := array.NewInt64Builder(mem)
	users := array.NewStringBuilder(mem)
	tss := array.NewTimestampBuilder(mem, g.sch.Field(2).Type.(*arrow.TimestampType))
	amounts := array.NewFloat64Builder(mem)
	idx := make([]int32, n)
	start := tsStart.UnixMicro()
	var ub []byte
	for i := 0; i < n; i++ {
		row := first + int64(i)
		ids.Append(1_000_000 + row)
		if row%50 == 7 {
			users.AppendNull()
		} else {
			ub = appendUser(ub[:0], r)
			users.BinaryBuilder.Append(ub)
		}
		tss.Append(arrow.Timestamp(start + row*1000 + r.Int64N(1000)))
		if row%100 == 3 {
			amounts.AppendNull()
		} else {
			amounts.Append(float64(r.IntN(1_000_000)) / 100)
		}
		idx[i] = int32(r.IntN(len(categories)))
	}
	cols := []arrow.Array{ids.NewArray(), users.NewArray(), tss.NewArray(), amounts.NewArray(), dictColumn(g.dt, g.dict, idx)}
	for _, b := range []interface{ Release() }{ids, users, tss, amounts} {
		b.Release()
	}
	rec := array.NewRecordBatch(g.sch, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// ---------------------------------------------------------------- wide

var (
	countries = []string{"DE", "FR", "US", "GB", "JP", "BR", "IN", "CA", "AU", "ES", "IT", "NL"}
	devices   = []string{"ios", "android", "web", "desktop", "tv"}
	tagWords  = []string{"new", "sale", "vip", "returning", "mobile", "promo", "gift", "bulk", "express", "eco"}
	cities    = []string{"Berlin", "Paris", "New York", "London", "Tokyo", "São Paulo", "Mumbai", "Toronto"}
	sources   = []string{"api", "batch", "stream", "import"}
	words     = []string{"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
		"eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "quote\"d", "tab\tbed"}
)

type wide struct {
	sch            *arrow.Schema
	countryT       *arrow.DictionaryType
	deviceT        *arrow.DictionaryType
	country, devic arrow.Array
}

func newWide() *wide {
	dictT := func() *arrow.DictionaryType {
		return &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	}
	g := &wide{countryT: dictT(), deviceT: dictT(), country: dictOf(countries), devic: dictOf(devices)}
	g.sch = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},                                                          // 0
		{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},                                          // 1
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},                      // 2
		{Name: "event_date", Type: arrow.FixedWidthTypes.Date32},                                                // 3
		{Name: "created_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond}},                               // 4
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8},                                                           // 5
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16},                                                         // 6
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},                                         // 7
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64},                                                         // 8
		{Name: "u8", Type: arrow.PrimitiveTypes.Uint8},                                                          // 9
		{Name: "u16", Type: arrow.PrimitiveTypes.Uint16},                                                        // 10
		{Name: "u32", Type: arrow.PrimitiveTypes.Uint32},                                                        // 11
		{Name: "u64", Type: arrow.PrimitiveTypes.Uint64},                                                        // 12
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32},                                                       // 13
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64},                                                       // 14
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},                                     // 15
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean},                                                     // 16
		{Name: "active", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},                                   // 17
		{Name: "name", Type: arrow.BinaryTypes.String},                                                          // 18
		{Name: "email", Type: arrow.BinaryTypes.String},                                                         // 19
		{Name: "country", Type: g.countryT},                                                                     // 20
		{Name: "device", Type: g.deviceT},                                                                       // 21
		{Name: "description", Type: arrow.BinaryTypes.LargeString},                                              // 22
		{Name: "payload", Type: arrow.BinaryTypes.Binary},                                                       // 23
		{Name: "price", Type: &arrow.Decimal128Type{Precision: 18, Scale: 4}},                                   // 24
		{Name: "total", Type: &arrow.Decimal128Type{Precision: 38, Scale: 10}},                                  // 25
		{Name: "tax", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}, Nullable: true},                     // 26
		{Name: "balance", Type: &arrow.Decimal256Type{Precision: 50, Scale: 6}},                                 // 27
		{Name: "duration_ms", Type: arrow.FixedWidthTypes.Duration_ms},                                          // 28
		{Name: "time_of_day", Type: arrow.FixedWidthTypes.Time64us},                                             // 29
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)},                                            // 30
		{Name: "scores", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},                        // 31
		{Name: "location", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float64)},                        // 32
		{Name: "address", Type: arrow.StructOf(addressFields...)},                                               // 33
		{Name: "meta", Type: arrow.StructOf(metaFields...), Nullable: true},                                     // 34
		{Name: "attrs", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64)},                // 35
		{Name: "uuid", Type: &arrow.FixedSizeBinaryType{ByteWidth: 16}},                                         // 36
		{Name: "ratio", Type: arrow.PrimitiveTypes.Float64},                                                     // 37
		{Name: "seq", Type: arrow.PrimitiveTypes.Int64},                                                         // 38
		{Name: "updated", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true}, // 39
	}, nil)
	return g
}

var (
	addressFields = []arrow.Field{
		{Name: "street", Type: arrow.BinaryTypes.String},
		{Name: "city", Type: arrow.BinaryTypes.String},
		{Name: "zip", Type: arrow.PrimitiveTypes.Int32},
	}
	metaFields = []arrow.Field{
		{Name: "source", Type: arrow.BinaryTypes.String},
		{Name: "version", Type: arrow.PrimitiveTypes.Int16},
		{Name: "labels", Type: arrow.ListOf(arrow.BinaryTypes.String)},
	}
)

func (g *wide) schema() *arrow.Schema { return g.sch }

func (g *wide) batch(r *rand.Rand, first int64, n int) arrow.RecordBatch {
	mem := memory.DefaultAllocator
	b := array.NewRecordBuilder(mem, g.sch)
	defer b.Release()
	b.Reserve(n)
	countryIdx := make([]int32, n)
	deviceIdx := make([]int32, n)
	startUs := tsStart.UnixMicro()
	startDay := int32(tsStart.Unix() / 86400)
	var sb []byte
	for i := 0; i < n; i++ {
		row := first + int64(i)
		ts := startUs + row*1000 + r.Int64N(1000)
		b.Field(0).(*array.Int64Builder).Append(row)
		if row%50 == 7 {
			b.Field(1).AppendNull()
		} else {
			sb = appendUser(sb[:0], r)
			b.Field(1).(*array.StringBuilder).BinaryBuilder.Append(sb)
		}
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ts))
		b.Field(3).(*array.Date32Builder).Append(arrow.Date32(startDay + int32(row/86_400_000)))
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(ts/1000 - r.Int64N(86_400_000)))
		b.Field(5).(*array.Int8Builder).Append(int8(r.IntN(256) - 128))
		b.Field(6).(*array.Int16Builder).Append(int16(r.IntN(65536) - 32768))
		if row%10 == 1 {
			b.Field(7).AppendNull()
		} else {
			b.Field(7).(*array.Int32Builder).Append(r.Int32())
		}
		b.Field(8).(*array.Int64Builder).Append(r.Int64() - r.Int64())
		b.Field(9).(*array.Uint8Builder).Append(uint8(r.UintN(256)))
		b.Field(10).(*array.Uint16Builder).Append(uint16(r.UintN(65536)))
		b.Field(11).(*array.Uint32Builder).Append(r.Uint32())
		b.Field(12).(*array.Uint64Builder).Append(r.Uint64())
		b.Field(13).(*array.Float32Builder).Append(r.Float32() * 1000)
		b.Field(14).(*array.Float64Builder).Append(r.NormFloat64() * 1e6)
		if row%7 == 2 {
			b.Field(15).AppendNull()
		} else {
			b.Field(15).(*array.Float64Builder).Append(float64(r.IntN(10_000)) / 100)
		}
		b.Field(16).(*array.BooleanBuilder).Append(r.IntN(2) == 0)
		if row%5 == 0 {
			b.Field(17).AppendNull()
		} else {
			b.Field(17).(*array.BooleanBuilder).Append(r.IntN(2) == 0)
		}
		sb = append(append(append(sb[:0], words[r.IntN(len(words))]...), ' '), words[r.IntN(len(words))]...)
		b.Field(18).(*array.StringBuilder).BinaryBuilder.Append(sb)
		sb = strconv.AppendInt(append(append(sb[:0], words[r.IntN(len(words))]...), '.'), row, 10)
		sb = append(sb, "@example.com"...)
		b.Field(19).(*array.StringBuilder).BinaryBuilder.Append(sb)
		countryIdx[i] = int32(r.IntN(len(countries)))
		deviceIdx[i] = int32(r.IntN(len(devices)))
		sb = sb[:0]
		for w, nw := 0, 4+r.IntN(8); w < nw; w++ {
			if w > 0 {
				sb = append(sb, ' ')
			}
			sb = append(sb, words[r.IntN(len(words))]...)
		}
		b.Field(22).(*array.LargeStringBuilder).BinaryBuilder.Append(sb)
		sb = sb[:0]
		for k := 0; k < 16; k++ {
			sb = append(sb, byte(r.UintN(256)))
		}
		b.Field(23).(*array.BinaryBuilder).Append(sb)
		b.Field(24).(*array.Decimal128Builder).Append(decimal128.FromI64(r.Int64N(10_000_000_000)))
		b.Field(25).(*array.Decimal128Builder).Append(decimal128.New(r.Int64N(1<<40), r.Uint64()))
		if row%9 == 4 {
			b.Field(26).AppendNull()
		} else {
			b.Field(26).(*array.Decimal128Builder).Append(decimal128.FromI64(r.Int64N(10_000_000) - 5_000_000))
		}
		b.Field(27).(*array.Decimal256Builder).Append(decimal256.New(0, uint64(r.Int64N(1<<20)), r.Uint64(), r.Uint64()))
		b.Field(28).(*array.DurationBuilder).Append(arrow.Duration(r.Int64N(3_600_000)))
		b.Field(29).(*array.Time64Builder).Append(arrow.Time64(r.Int64N(86_400_000_000)))
		tags := b.Field(30).(*array.ListBuilder)
		tags.Append(true)
		for k, nk := 0, r.IntN(4); k < nk; k++ {
			tags.ValueBuilder().(*array.StringBuilder).Append(tagWords[r.IntN(len(tagWords))])
		}
		scores := b.Field(31).(*array.ListBuilder)
		if row%11 == 5 {
			scores.AppendNull()
		} else {
			scores.Append(true)
			for k, nk := 0, r.IntN(6); k < nk; k++ {
				scores.ValueBuilder().(*array.Int32Builder).Append(int32(r.IntN(1000)))
			}
		}
		loc := b.Field(32).(*array.FixedSizeListBuilder)
		loc.Append(true)
		lv := loc.ValueBuilder().(*array.Float64Builder)
		lv.Append(r.Float64()*180 - 90)
		lv.Append(r.Float64()*360 - 180)
		lv.Append(float64(r.IntN(5000)))
		addr := b.Field(33).(*array.StructBuilder)
		addr.Append(true)
		sb = strconv.AppendInt(sb[:0], int64(1+r.IntN(300)), 10)
		sb = append(append(sb, ' '), words[r.IntN(len(words))]...)
		sb = append(sb, " Street"...)
		addr.FieldBuilder(0).(*array.StringBuilder).BinaryBuilder.Append(sb)
		addr.FieldBuilder(1).(*array.StringBuilder).Append(cities[r.IntN(len(cities))])
		addr.FieldBuilder(2).(*array.Int32Builder).Append(int32(10_000 + r.IntN(89_999)))
		meta := b.Field(34).(*array.StructBuilder)
		if row%13 == 6 {
			meta.AppendNull()
		} else {
			meta.Append(true)
			meta.FieldBuilder(0).(*array.StringBuilder).Append(sources[r.IntN(len(sources))])
			meta.FieldBuilder(1).(*array.Int16Builder).Append(int16(1 + r.IntN(5)))
			labels := meta.FieldBuilder(2).(*array.ListBuilder)
			labels.Append(true)
			for k, nk := 0, r.IntN(3); k < nk; k++ {
				labels.ValueBuilder().(*array.StringBuilder).Append(tagWords[r.IntN(len(tagWords))])
			}
		}
		attrs := b.Field(35).(*array.MapBuilder)
		attrs.Append(true)
		for k, nk := 0, r.IntN(3); k < nk; k++ {
			attrs.KeyBuilder().(*array.StringBuilder).Append(tagWords[(k*3+r.IntN(3))%len(tagWords)])
			attrs.ItemBuilder().(*array.Int64Builder).Append(r.Int64N(1_000_000))
		}
		sb = sb[:0]
		for k := 0; k < 16; k++ {
			sb = append(sb, byte(r.UintN(256)))
		}
		b.Field(36).(*array.FixedSizeBinaryBuilder).Append(sb)
		b.Field(37).(*array.Float64Builder).Append(r.Float64())
		b.Field(38).(*array.Int64Builder).Append(row * 3)
		if row%4 == 0 {
			b.Field(39).AppendNull()
		} else {
			b.Field(39).(*array.TimestampBuilder).Append(arrow.Timestamp(ts + r.Int64N(1_000_000_000)))
		}
	}
	// The dictionary columns are built from fixed dictionaries; the record
	// builder's own dictionary builders stay empty and unused.
	cols := make([]arrow.Array, g.sch.NumFields())
	for c := range cols {
		switch c {
		case 20:
			cols[c] = dictColumn(g.countryT, g.country, countryIdx)
		case 21:
			cols[c] = dictColumn(g.deviceT, g.devic, deviceIdx)
		default:
			cols[c] = b.Field(c).NewArray()
		}
	}
	rec := array.NewRecordBatch(g.sch, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}
