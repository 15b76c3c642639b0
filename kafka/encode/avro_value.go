package encode

import (
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// AvroValueSchema derives the Avro schema (compact JSON text) of one
// column's values on their own, not in a record: its type T as in the
// record mapping, never the ["null", T] union (a null is not written:
// see NewAvroValue). Named types inside it (a struct column's record, a
// fixed) are named by their path in namespace <namespace>.<name>, as in
// the record AvroSchema(…, name, namespace) derives.
func AvroValueSchema(field arrow.Field, name, namespace string) (string, error) {
	field.Nullable = false
	rec, _, err := buildAvro(arrow.NewSchema([]arrow.Field{field}, nil), name, namespace)
	if err != nil {
		return "", err
	}
	typ := rec.get("fields").([]any)[0].(avroObject).get("type")
	text, err := json.Marshal(typ)
	if err != nil {
		return "", fmt.Errorf("encode: Avro schema: %w", err)
	}
	return string(text), nil
}

// NewAvroValue builds an encoder of schema's only column's values on
// their own: Avro datums of AvroValueSchema's type (the column is taken
// as non-nullable, so a value is never preceded by a union branch). The
// caller decides what a null means; the encoder writes it as the type's
// zero value. Bind it to batches of the returned schema (the column
// marked non-nullable).
func NewAvroValue(schema *arrow.Schema) (*Avro, *arrow.Schema, error) {
	if schema.NumFields() != 1 {
		return nil, nil, fmt.Errorf("encode: NewAvroValue takes one column, got %d", schema.NumFields())
	}
	f := schema.Field(0)
	f.Nullable = false
	bare := arrow.NewSchema([]arrow.Field{f}, nil)
	enc, err := NewAvro(bare)
	return enc, bare, err
}
