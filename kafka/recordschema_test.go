package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/hamba/avro/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/flightsink/flightsink/kafka/encode"
)

// fakeRegistry hands out ids and remembers what was registered where.
type fakeRegistry struct {
	subjects []string
	schemas  []Schema
	refuse   error
}

func (r *fakeRegistry) register(subject string, s Schema) (int, error) {
	if r.refuse != nil {
		return 0, r.refuse
	}
	r.subjects = append(r.subjects, subject)
	r.schemas = append(r.schemas, s)
	return 100 + len(r.subjects), nil
}

var testInfo = TopicInfo{Topic: "orders", Partitions: 3, MaxMessageBytes: 1 << 20,
	TimestampBeforeMax: 1<<63 - 1, TimestampAfterMax: 1<<63 - 1}

// ordersBatch is 3 rows: id int64, user utf8 (one null), region
// dictionary (one null), amount float64.
func ordersBatch(t *testing.T, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "region", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 300}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"ann", "", "cid"}, []bool{true, false, true})
	rb := b.Field(2).(*array.BinaryDictionaryBuilder)
	_ = rb.AppendString("eu")
	rb.AppendNull()
	_ = rb.AppendString("us")
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{1.5, 0, -2}, nil)
	return b.NewRecordBatch()
}

// encodeAll builds the plan and encodes every row of rec.
func encodeAll(t *testing.T, rec arrow.RecordBatch, d *RecordOptions, info TopicInfo, reg RegisterFunc) []kgoRecord {
	t.Helper()
	if d.Format == "" {
		d.Format = FormatJSON
	}
	p, err := NewPlan(rec.Schema(), d, info, reg)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	if err := p.Bind(rec); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	out, next, err := p.encode(int(rec.NumRows()), 0, 0, 1, time.Now())
	if err != nil || next != int(rec.NumRows()) {
		t.Fatalf("Encode: %v (next %d)", err, next)
	}
	var recs []kgoRecord
	for _, r := range out.records {
		recs = append(recs, kgoRecord{key: bytes.Clone(r.Key), value: bytes.Clone(r.Value)})
	}
	out.Recycle()
	return recs
}

type kgoRecord struct{ key, value []byte }

// wire splits a Confluent wire format value: the schema id and the rest.
func wire(t *testing.T, b []byte) (int, []byte) {
	t.Helper()
	if len(b) < 5 || b[0] != 0 {
		t.Fatalf("% x is not in the Confluent wire format", b)
	}
	return int(binary.BigEndian.Uint32(b[1:5])), b[5:]
}

func TestProtobufValuesWithRegistry(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := ordersBatch(t, mem)
	defer rec.Release()
	reg := &fakeRegistry{}
	recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", Format: FormatProtobuf}, testInfo, reg.register)
	if len(reg.subjects) != 1 || reg.subjects[0] != "orders-value" || reg.schemas[0].Type != SchemaProtobuf ||
		!strings.Contains(reg.schemas[0].Text, "message orders {") {
		t.Fatalf("registered %v %+v", reg.subjects, reg.schemas)
	}
	enc, err := encode.NewProtobuf(rec.Schema(), "flightsink", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if enc.Schema() != reg.schemas[0].Text {
		t.Fatalf("registered\n%s\nwant\n%s", reg.schemas[0].Text, enc.Schema())
	}
	wantUsers := []string{"ann", "", "cid"}
	for i, r := range recs {
		id, rest := wire(t, r.value)
		if id != 101 || len(rest) == 0 || rest[0] != 0 {
			t.Fatalf("row %d: id %d, message index % x: want id 101, index [0] written as 0", i, id, rest[:1])
		}
		msg := dynamicpb.NewMessage(enc.Descriptor())
		if err := proto.Unmarshal(rest[1:], msg); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		fields := msg.Descriptor().Fields()
		if got := msg.Get(fields.ByName("id")).Int(); got != []int64{1, 2, 300}[i] {
			t.Errorf("row %d id = %d", i, got)
		}
		if got := msg.Get(fields.ByName("user")).String(); got != wantUsers[i] || msg.Has(fields.ByName("user")) != (i != 1) {
			t.Errorf("row %d user = %q (set %v)", i, got, msg.Has(fields.ByName("user")))
		}
	}
}

func TestJSONSchemaValues(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := ordersBatch(t, mem)
	defer rec.Release()
	reg := &fakeRegistry{}
	d := &RecordOptions{Topic: "orders", Format: FormatJSONSchema, JSON: encode.JSONOptions{TimestampFormat: "unix_millis"}}
	recs := encodeAll(t, rec, d, testInfo, reg.register)
	if reg.subjects[0] != "orders-value" || reg.schemas[0].Type != SchemaJSON || !strings.Contains(reg.schemas[0].Text, `"title":"flightsink.orders"`) {
		t.Fatalf("registered %v %+v", reg.subjects, reg.schemas)
	}
	if id, rest := wire(t, recs[1].value); id != 101 || string(rest) != `{"id":2,"user":null,"region":null,"amount":0}` {
		t.Errorf("row 1: id %d, %s", id, rest)
	}
	// without a registry there is no wire format: refused, pointing at "json"
	_, err := NewPlan(rec.Schema(), d, testInfo, nil)
	var oe *OptionError
	if !errors.As(err, &oe) || !strings.Contains(oe.Msg, `without one use "json"`) {
		t.Errorf("without a registry: %v", err)
	}
}

func TestSubjectNameStrategies(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := ordersBatch(t, mem)
	defer rec.Release()
	for _, tc := range []struct {
		strategy   SubjectStrategy
		subject    string
		value, key string
	}{
		{"", "", "orders-value", "orders-key"},
		{SubjectTopic, "", "orders-value", "orders-key"},
		{SubjectRecord, "", "flightsink.orders", "flightsink.key.orders"},
		{SubjectTopicRecord, "", "orders-flightsink.orders", "orders-flightsink.key.orders"},
		{SubjectRecord, "mine", "mine", "flightsink.key.orders"}, // an explicit subject wins for the value
	} {
		for _, f := range []Format{FormatAvro, FormatProtobuf, FormatJSONSchema} {
			reg := &fakeRegistry{}
			d := &RecordOptions{Topic: "orders", Format: f, Subject: tc.subject, SubjectStrategy: tc.strategy,
				KeyFields: []string{"id", "user"}, KeyFormat: KeyFormat(f)}
			if _, err := NewPlan(rec.Schema(), d, testInfo, reg.register); err != nil {
				t.Fatal(err)
			}
			if len(reg.subjects) != 2 || reg.subjects[0] != tc.value || reg.subjects[1] != tc.key {
				t.Errorf("%s %q subject %q: registered under %q, want %q and %q", f, tc.strategy, tc.subject, reg.subjects, tc.value, tc.key)
			}
		}
	}
}

func TestKeyFormats(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := ordersBatch(t, mem)
	defer rec.Release()

	t.Run("string is today's key", func(t *testing.T) {
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyField: "id"}, testInfo, nil)
		if string(recs[2].key) != "300" {
			t.Errorf("key %q", recs[2].key)
		}
	})
	t.Run("json key_field is the bare value", func(t *testing.T) {
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyField: "user", KeyFormat: KeyJSON}, testInfo, nil)
		if string(recs[0].key) != `"ann"` || recs[1].key != nil {
			t.Errorf("keys %q %q, want \"ann\" and none (null)", recs[0].key, recs[1].key)
		}
	})
	t.Run("json key_fields is an object, never null", func(t *testing.T) {
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyFields: []string{"region", "id"}, KeyFormat: KeyJSON}, testInfo, nil)
		if string(recs[1].key) != `{"region":null,"id":2}` {
			t.Errorf("key %s", recs[1].key)
		}
	})
	t.Run("avro key_field is a bare datum in the wire format", func(t *testing.T) {
		reg := &fakeRegistry{}
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyField: "region", KeyFormat: KeyAvro}, testInfo, reg.register)
		if reg.subjects[0] != "orders-key" || reg.schemas[0].Text != `"string"` {
			t.Fatalf("registered %v %+v", reg.subjects, reg.schemas)
		}
		id, datum := wire(t, recs[2].key)
		if id != 101 || !bytes.Equal(datum, []byte{4, 'u', 's'}) {
			t.Errorf("key id %d datum % x", id, datum)
		}
		if recs[1].key != nil {
			t.Errorf("a null dictionary value gave key % x, want none", recs[1].key)
		}
	})
	t.Run("avro key_fields is a record", func(t *testing.T) {
		reg := &fakeRegistry{}
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", Format: FormatAvro, KeyFields: []string{"id", "user"}, KeyFormat: KeyAvro},
			testInfo, reg.register)
		if reg.subjects[1] != "orders-key" {
			t.Fatalf("registered %v", reg.subjects)
		}
		sch, err := avro.Parse(reg.schemas[1].Text)
		if err != nil {
			t.Fatal(err)
		}
		if sch.(*avro.RecordSchema).FullName() != "flightsink.key.orders" {
			t.Errorf("key record %s", sch.(*avro.RecordSchema).FullName())
		}
		id, datum := wire(t, recs[1].key)
		var got map[string]any
		if err := avro.Unmarshal(sch, datum, &got); err != nil || id != 102 {
			t.Fatalf("id %d: %v", id, err)
		}
		if got["id"] != int64(2) || got["user"] != nil {
			t.Errorf("key %v", got)
		}
	})
	t.Run("protobuf key is a message", func(t *testing.T) {
		reg := &fakeRegistry{}
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyField: "id", KeyFormat: KeyProtobuf}, testInfo, reg.register)
		if reg.subjects[0] != "orders-key" || !strings.Contains(reg.schemas[0].Text, "package flightsink.key;") {
			t.Fatalf("registered %v %+v", reg.subjects, reg.schemas)
		}
		id, rest := wire(t, recs[2].key)
		// index 0, then field 1 varint 300
		if id != 101 || !bytes.Equal(rest, []byte{0, 0x08, 0xac, 0x02}) {
			t.Errorf("key id %d, % x", id, rest)
		}
	})
	t.Run("json_schema key", func(t *testing.T) {
		reg := &fakeRegistry{}
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyField: "id", KeyFormat: KeyJSONSchema}, testInfo, reg.register)
		if reg.schemas[0].Text != `{"$schema":"http://json-schema.org/draft-07/schema#","title":"flightsink.key.orders","type":"integer"}` {
			t.Fatalf("registered %+v", reg.schemas)
		}
		if id, rest := wire(t, recs[0].key); id != 101 || string(rest) != "1" {
			t.Errorf("key id %d %s", id, rest)
		}
	})
	t.Run("avro key without a registry is a bare datum", func(t *testing.T) {
		recs := encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyField: "id", KeyFormat: KeyAvro}, testInfo, nil)
		if !bytes.Equal(recs[0].key, []byte{2}) {
			t.Errorf("key % x", recs[0].key)
		}
	})
	t.Run("a compacted topic takes key_fields", func(t *testing.T) {
		info := testInfo
		info.Compacted = true
		encodeAll(t, rec, &RecordOptions{Topic: "orders", KeyFields: []string{"user"}, KeyFormat: KeyJSON}, info, nil)
	})
}

func TestKeyOptionErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := ordersBatch(t, mem)
	defer rec.Release()
	for _, tc := range []struct {
		d    RecordOptions
		want string
	}{
		{RecordOptions{KeyField: "id", KeyFields: []string{"user"}, KeyFormat: KeyJSON}, "exclude each other"},
		{RecordOptions{KeyFields: []string{"id"}}, `set "key_format"`},
		{RecordOptions{KeyFields: []string{"id", "nope"}, KeyFormat: KeyJSON}, `no column "nope"`},
		{RecordOptions{KeyFields: []string{"id", "id"}, KeyFormat: KeyJSON}, "named twice"},
		{RecordOptions{KeyField: "id", KeyFormat: KeyJSONSchema}, "needs a schema registry"},
	} {
		tc.d.Topic, tc.d.Format = "orders", FormatJSON
		_, err := NewPlan(rec.Schema(), &tc.d, testInfo, nil)
		var oe *OptionError
		if !errors.As(err, &oe) || !strings.Contains(oe.Msg, tc.want) {
			t.Errorf("%+v: got %v, want an OptionError saying %q", tc.d, err, tc.want)
		}
	}
	// a refused key schema is the registry's error, as for values
	reg := &fakeRegistry{refuse: ErrSchemaRejected}
	_, err := NewPlan(rec.Schema(), &RecordOptions{Topic: "orders", KeyField: "id", KeyFormat: KeyAvro}, testInfo, reg.register)
	if !errors.Is(err, ErrSchemaRejected) {
		t.Errorf("got %v, want ErrSchemaRejected", err)
	}
}
