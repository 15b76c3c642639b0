package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/avro"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	hamba "github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// A topic whose Avro value subject (<topic>-value, the default subject
// name strategy) exists in the schema registry is a table without a
// declaration: its columns are the subject's latest schema, read as Arrow
// (arrow-go's arrow/avro), and rows written to it are encoded in that very
// schema and tagged with its id. Nothing is registered: the writer checks
// that the Avro schema it derives from those columns has the subject's
// shape (the same fields in the same order, the same types and unions;
// record names and docs aside), so the bytes it writes are that schema's
// encoding. A subject of another type (Protobuf, JSON Schema) declares
// nothing.

// SubjectTable returns the table topic's Avro value subject declares:
// found false when there is no registry, no such subject or it is not
// Avro; an error when the registry cannot be read (ErrUnavailable) or
// the subject's schema cannot be a table (ErrSchemaRejected, naming the
// field).
func (s *Sink) SubjectTable(ctx context.Context, topic string) (sinkapi.Table, bool, error) {
	if s.registry == nil {
		return sinkapi.Table{}, false, nil
	}
	subject := topic + "-value"
	ss, found, err := s.registry.latest(ctx, subject)
	if err != nil || !found || ss.Type != sr.TypeAvro {
		return sinkapi.Table{}, false, err
	}
	schema, err := avro.ArrowSchemaFromAvroJSON(ss.Schema.Schema)
	if err != nil {
		return sinkapi.Table{}, false, fmt.Errorf("%w: subject %q (version %d) cannot be a table: %v",
			ErrSchemaRejected, subject, ss.Version, err)
	}
	return sinkapi.Table{Topic: topic, Schema: flight.SerializeSchema(schema, memory.DefaultAllocator),
		Options: map[string]string{"format": string(FormatAvro)}, Subject: subject}, true, nil
}

// SubjectTables returns the tables the Avro value subjects of topics
// declare, by topic: one listing of the registry's subjects, then the
// latest version of each that matches. A subject that cannot be a table
// is left out (SubjectTable says why when the table is used).
func (s *Sink) SubjectTables(ctx context.Context, topics []string) (map[string]sinkapi.Table, error) {
	out := map[string]sinkapi.Table{}
	if s.registry == nil || len(topics) == 0 {
		return out, nil
	}
	subjects, err := s.registry.cl.Subjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: schema registry: listing subjects: %v", ErrUnavailable, err)
	}
	have := map[string]bool{}
	for _, sub := range subjects {
		have[sub] = true
	}
	for _, topic := range topics {
		if !have[topic+"-value"] {
			continue
		}
		t, found, err := s.SubjectTable(ctx, topic)
		if errors.Is(err, ErrSchemaRejected) || !found {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[topic] = t
	}
	return out, nil
}

// latest reads a subject's latest version; found false when the subject
// does not exist.
func (r *Registry) latest(ctx context.Context, subject string) (sr.SubjectSchema, bool, error) {
	ss, err := r.cl.SchemaByVersion(ctx, subject, -1)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.StatusCode == 404 || re.ErrorCode == sr.ErrSubjectNotFound.Code || re.ErrorCode == sr.ErrVersionNotFound.Code) {
			return sr.SubjectSchema{}, false, nil
		}
		return sr.SubjectSchema{}, false, fmt.Errorf("%w: schema registry: subject %q: %v", ErrUnavailable, subject, err)
	}
	return ss, true, nil
}

// Match returns the id of subject's latest version when schema (an Avro
// schema a stream derived from its columns) has that version's shape, so
// records encoded with schema decode with it; else ErrSchemaRejected
// naming the first difference. It registers nothing.
func (r *Registry) Match(ctx context.Context, subject string, schema Schema) (int, error) {
	ss, found, err := r.latest(ctx, subject)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%w: subject %q is gone from the schema registry", ErrSchemaRejected, subject)
	}
	if schema.Type != SchemaAvro || ss.Type != sr.TypeAvro {
		return 0, fmt.Errorf("%w: subject %q holds a %s schema, the table is written as Avro", ErrSchemaRejected, subject, ss.Type)
	}
	theirs, err := hamba.ParseWithCache(ss.Schema.Schema, "", &hamba.SchemaCache{})
	if err != nil {
		return 0, fmt.Errorf("%w: subject %q (version %d): %v", ErrSchemaRejected, subject, ss.Version, err)
	}
	ours, err := hamba.ParseWithCache(schema.Text, "", &hamba.SchemaCache{})
	if err != nil {
		return 0, fmt.Errorf("kafka: the derived Avro schema does not parse: %w", err)
	}
	if diff := avroShapeDiff(theirs, ours, "value"); diff != "" {
		return 0, fmt.Errorf("%w: subject %q (version %d): %s; declare the table with CREATE TABLE to write another schema",
			ErrSchemaRejected, subject, ss.Version, diff)
	}
	return ss.ID, nil
}

// avroShapeDiff describes the first place where data encoded in schema b
// would not decode as schema a ("" when none): types, logical types,
// record fields (names and order), union branches (and order), items,
// values, fixed sizes and enum symbols. Names of records, enums and
// fixed types, docs, defaults and aliases do not matter to the encoding.
func avroShapeDiff(a, b hamba.Schema, path string) string {
	a, b = derefAvro(a), derefAvro(b)
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s: the subject has %s, the columns give %s", path, describeAvro(a), describeAvro(b))
	}
	switch a := a.(type) {
	case *hamba.RecordSchema:
		b := b.(*hamba.RecordSchema)
		af, bf := a.Fields(), b.Fields()
		for i := range max(len(af), len(bf)) {
			switch {
			case i >= len(af):
				return fmt.Sprintf("%s: the subject has no field %q", path, bf[i].Name())
			case i >= len(bf):
				return fmt.Sprintf("%s: field %q of the subject has no column", path, af[i].Name())
			case af[i].Name() != bf[i].Name():
				return fmt.Sprintf("%s: field %d is %q in the subject, %q in the columns", path, i+1, af[i].Name(), bf[i].Name())
			}
			if d := avroShapeDiff(af[i].Type(), bf[i].Type(), path+"."+af[i].Name()); d != "" {
				return d
			}
		}
	case *hamba.UnionSchema:
		at, bt := a.Types(), b.(*hamba.UnionSchema).Types()
		if len(at) != len(bt) {
			return fmt.Sprintf("%s: the subject has %s, the columns give %s", path, describeAvro(a), describeAvro(b))
		}
		for i := range at {
			if d := avroShapeDiff(at[i], bt[i], path); d != "" {
				return fmt.Sprintf("%s (the subject has %s, the columns give %s)", d, describeAvro(a), describeAvro(b))
			}
		}
	case *hamba.ArraySchema:
		return avroShapeDiff(a.Items(), b.(*hamba.ArraySchema).Items(), path+"[]")
	case *hamba.MapSchema:
		return avroShapeDiff(a.Values(), b.(*hamba.MapSchema).Values(), path+"{}")
	case *hamba.EnumSchema:
		if !slices.Equal(a.Symbols(), b.(*hamba.EnumSchema).Symbols()) {
			return fmt.Sprintf("%s: the enum's symbols differ", path)
		}
	case *hamba.FixedSchema:
		bf := b.(*hamba.FixedSchema)
		if a.Size() != bf.Size() || logicalOf(a.Logical()) != logicalOf(bf.Logical()) {
			return fmt.Sprintf("%s: the subject has %s, the columns give %s", path, describeAvro(a), describeAvro(b))
		}
	case *hamba.PrimitiveSchema:
		if logicalOf(a.Logical()) != logicalOf(b.(*hamba.PrimitiveSchema).Logical()) {
			return fmt.Sprintf("%s: the subject has %s, the columns give %s", path, describeAvro(a), describeAvro(b))
		}
	}
	return ""
}

func derefAvro(s hamba.Schema) hamba.Schema {
	if r, ok := s.(*hamba.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// logicalOf names a logical type with its parameters ("" for none).
func logicalOf(l hamba.LogicalSchema) string {
	if l == nil {
		return ""
	}
	if d, ok := l.(*hamba.DecimalLogicalSchema); ok {
		return fmt.Sprintf("decimal(%d,%d)", d.Precision(), d.Scale())
	}
	return string(l.Type())
}

// describeAvro names a schema briefly for a message.
func describeAvro(s hamba.Schema) string {
	s = derefAvro(s)
	switch s := s.(type) {
	case *hamba.UnionSchema:
		var parts []string
		for _, t := range s.Types() {
			parts = append(parts, describeAvro(t))
		}
		return fmt.Sprintf("%v", parts)
	case *hamba.PrimitiveSchema:
		if l := logicalOf(s.Logical()); l != "" {
			return fmt.Sprintf("%s (%s)", s.Type(), l)
		}
	case *hamba.FixedSchema:
		return fmt.Sprintf("fixed(%d) %s", s.Size(), logicalOf(s.Logical()))
	}
	return string(s.Type())
}
