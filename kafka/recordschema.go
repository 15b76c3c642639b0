package kafka

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flightsink/flightsink/kafka/encode"
)

// recordName is the name of a record (Avro record, protobuf message, JSON
// Schema title) a schema format derives for a stream: values are named
// after the topic in namespace "flightsink", keys in "flightsink.key", so
// the two never share a name (which the record subject strategies need).
type recordName struct{ namespace, name string }

func (n recordName) full() string { return n.namespace + "." + n.name }

func valueRecord(topic string) recordName { return recordName{"flightsink", avroName(topic)} }
func keyRecord(topic string) recordName   { return recordName{"flightsink.key", avroName(topic)} }

// subjectName is the registry subject of the value's (key false) or the
// key's schema, record n: the descriptor's subject for the value, else
// what the subject name strategy says.
func subjectName(d *RecordOptions, n recordName, key bool) string {
	if !key && d.Subject != "" {
		return d.Subject
	}
	switch d.SubjectStrategy {
	case SubjectRecord:
		return n.full()
	case SubjectTopicRecord:
		return d.Topic + "-" + n.full()
	}
	if key {
		return d.Topic + "-key"
	}
	return d.Topic + "-value"
}

// schemaFormat is an encoder of some columns in a format with a schema,
// that schema, and the wire format header a schema id gives it.
type schemaFormat struct {
	enc    rowEncoder
	sch    *arrow.Schema // the schema enc binds to
	schema Schema        // what is registered; Text "" for plain JSON keys
	prefix func(id int) []byte
}

// newSchemaFormat builds format f's encoder of the columns of sch, record
// n. bare: sch has one column, written as its value alone (a key_field
// key) rather than as a record; protobuf has no bare values, so its key
// is always a message.
func newSchemaFormat(f Format, sch *arrow.Schema, n recordName, bare bool, opts encode.JSONOptions) (*schemaFormat, error) {
	switch f {
	case FormatAvro:
		if bare {
			enc, vsch, err := encode.NewAvroValue(sch)
			if err != nil {
				return nil, err
			}
			text, err := encode.AvroValueSchema(sch.Field(0), n.name, n.namespace)
			return &schemaFormat{enc: enc, sch: vsch, schema: Schema{Type: SchemaAvro, Text: text}, prefix: WirePrefix}, err
		}
		enc, err := encode.NewAvro(sch)
		if err != nil {
			return nil, err
		}
		text, err := encode.AvroSchema(sch, n.name, n.namespace)
		return &schemaFormat{enc: enc, sch: sch, schema: Schema{Type: SchemaAvro, Text: text}, prefix: WirePrefix}, err
	case FormatProtobuf:
		enc, err := encode.NewProtobuf(sch, n.namespace, n.name)
		if err != nil {
			return nil, err
		}
		return &schemaFormat{enc: enc, sch: sch, schema: Schema{Type: SchemaProtobuf, Text: enc.Schema()}, prefix: ProtobufWirePrefix}, nil
	case FormatJSON, FormatJSONSchema:
		var enc rowEncoder
		var text string
		var err error
		if bare {
			if enc, err = encode.NewJSONValue(sch, opts); err == nil && f == FormatJSONSchema {
				text, err = encode.JSONValueSchema(sch.Field(0), n.full(), opts)
			}
		} else if enc, err = encode.NewJSONWithOptions(sch, opts); err == nil && f == FormatJSONSchema {
			text, err = encode.JSONSchema(sch, n.full(), opts)
		}
		if err != nil {
			return nil, err
		}
		sf := &schemaFormat{enc: enc, sch: sch}
		if f == FormatJSONSchema {
			sf.schema, sf.prefix = Schema{Type: SchemaJSON, Text: text}, WirePrefix
		}
		return sf, nil
	}
	return nil, fmt.Errorf("kafka: format %q has no schema", f)
}

// register registers the format's schema under subject and returns the
// wire format header of its id; nil without a registry (bare datums) or a
// schema (plain JSON).
func (sf *schemaFormat) register(subject string, register RegisterFunc) ([]byte, error) {
	if register == nil || sf.prefix == nil {
		return nil, nil
	}
	id, err := register(subject, sf.schema)
	if err != nil {
		return nil, err
	}
	return sf.prefix(id), nil
}

// keyEncoder builds a row's record key.
type keyEncoder interface {
	Bind(rec arrow.RecordBatch) error
	// AppendKey appends row's key; ok false (dst unchanged): no key.
	AppendKey(dst []byte, row int) (out []byte, ok bool)
}

// stringKey is key_format "string": the key_field column's bytes.
type stringKey struct{ *encode.Key }

func (k stringKey) Bind(rec arrow.RecordBatch) error { k.Key.Bind(rec); return nil }

// recordKey is a key in a format with a schema (or JSON): key_fields as
// one record, or key_field's value alone (a protobuf message of that one
// field); a null key_field value is no key, as with key_format string.
type recordKey struct {
	enc    rowEncoder
	prefix []byte
	cols   []int
	sch    *arrow.Schema
	arrs   []arrow.Array // scratch: the bound batch's key columns
	single bool          // key_field (not key_fields): a null value is no key
	bare   arrow.Array   // key_field: the bound batch's column
}

// newRecordKey builds the key of format d.KeyFormat from d.KeyFields (a
// record) or d.KeyField (its value alone), registering its schema under
// the key subject.
func newRecordKey(schema *arrow.Schema, d *RecordOptions, register RegisterFunc) (*recordKey, error) {
	key, names := "key_fields", d.KeyFields
	if len(names) == 0 {
		key, names = "key_field", []string{d.KeyField}
	}
	k := &recordKey{single: len(d.KeyFields) == 0}
	fields := make([]arrow.Field, len(names))
	seen := map[string]bool{}
	for i, name := range names {
		idx := schema.FieldIndices(name)
		if len(idx) == 0 {
			return nil, optionError(fmt.Sprintf(`key %q: no column %q (columns: %s)`, key, name, columnNames(schema)))
		}
		if seen[name] {
			return nil, optionError(fmt.Sprintf(`key %q: column %q is named twice`, key, name))
		}
		seen[name] = true
		k.cols = append(k.cols, idx[0])
		fields[i] = schema.Field(idx[0])
	}
	f := Format(d.KeyFormat)
	if f == Format(KeyJSONSchema) {
		f = FormatJSONSchema
	}
	if f == FormatJSONSchema && register == nil {
		return nil, optionError(`key "key_format": "json_schema" needs a schema registry (kafka.schema_registry.url); without one use "json"`)
	}
	sf, err := newSchemaFormat(f, arrow.NewSchema(fields, nil), keyRecord(d.Topic), len(d.KeyFields) == 0, d.JSON)
	if err != nil {
		return nil, schemaError(key, err)
	}
	if k.prefix, err = sf.register(subjectName(d, keyRecord(d.Topic), true), register); err != nil {
		return nil, err
	}
	k.enc, k.sch = sf.enc, sf.sch
	k.arrs = make([]arrow.Array, len(k.cols))
	return k, nil
}

func (k *recordKey) Bind(rec arrow.RecordBatch) error {
	for i, c := range k.cols {
		k.arrs[i] = rec.Column(c)
	}
	kr := array.NewRecordBatch(k.sch, k.arrs, rec.NumRows())
	defer kr.Release() // the encoder keeps the columns, which rec holds
	if k.single {
		k.bare = k.arrs[0]
	}
	return k.enc.Bind(kr)
}

func (k *recordKey) AppendKey(dst []byte, row int) ([]byte, bool) {
	if k.bare != nil && nullAt(k.bare, row) {
		return dst, false
	}
	return k.enc.AppendRow(append(dst, k.prefix...), row), true
}

// nullAt reports whether row i of arr is null, looking through
// dictionaries (a null index or entry) and run-end encoding (a null run).
func nullAt(arr arrow.Array, i int) bool {
	switch a := arr.(type) {
	case *array.Dictionary:
		return a.IsNull(i) || a.Dictionary().IsNull(a.GetValueIndex(i))
	case *array.RunEndEncoded:
		return nullAt(a.Values(), a.GetPhysicalIndex(i))
	}
	return arr.IsNull(i)
}
