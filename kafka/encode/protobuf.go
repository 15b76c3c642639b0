package encode

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// The well-known types the derived files import, registered in
	// protoregistry.GlobalFiles for protodesc to resolve.
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
)

// Protobuf mapping
//
// NewProtobuf derives one proto3 file from an Arrow schema: package pkg,
// one top-level message called name whose fields are the columns, in
// schema order, numbered from 1 (19000-19999, reserved by protobuf, are
// skipped), with the columns' names. Protobuf encodes each row as that
// message's binary encoding (no framing: the caller adds the Confluent
// wire format header, whose message index is [0], the top-level message).
//
// Presence. A nullable scalar column or struct field is `optional T` (a
// null is an absent field, so a reader can tell null from zero); a
// non-nullable one is plain T with proto3's implicit presence: a zero
// value is not written, as every proto3 encoder does. Message types
// (structs, timestamps, durations) always have presence: null is absent.
// Repeated fields have no presence: a null list or map is written like an
// empty one. Protobuf has no null element: a null list element, map value
// or map key is written as its type's zero value (0, "", an empty message).
// A null where the Arrow field says non-nullable is written as absent (the
// zero value).
//
//	Arrow type                          proto3 type
//	null                                .google.protobuf.NullValue (never written: always NULL_VALUE)
//	bool                                bool
//	int8, int16, int32                  int32
//	int64                               int64
//	uint8, uint16, uint32               uint32
//	uint64                              uint64
//	halffloat, float                    float (halffloat widened exactly)
//	double                              double
//	decimal32/64/128/256(p, s)          string: the exact decimal text with the column's scale, as in
//	                                    JSON ("12.30", "-0.05"; a negative scale appends zeros)
//	string, large_string, string_view   string (invalid UTF-8 bytes become U+FFFD: protobuf strings
//	                                    must be valid UTF-8)
//	binary, large_binary, binary_view,  bytes
//	fixed_size_binary
//	date32, date64                      int32, days since 1970-01-01 (a date64 floored to its day)
//	time32[s], time32[ms]               int32, seconds / milliseconds since midnight (the field's comment
//	                                    in the .proto says which)
//	time64[us], time64[ns]              int64, microseconds / nanoseconds since midnight
//	timestamp[any unit, any zone]       .google.protobuf.Timestamp (seconds and nanos since the epoch,
//	                                    UTC; floored, so nanos are never negative)
//	duration[any unit]                  .google.protobuf.Duration (seconds and nanos of the same sign)
//	list, large_list, list_view,        repeated T (packed for numbers); a list of lists or of maps
//	large_list_view, fixed_size_list    becomes repeated <Name>Item, a message whose field 1 "value"
//	                                    holds the inner list or map
//	struct                              a nested message, declared inside the message that uses it
//	map<K, V>, K bool, an integer or    map<K', V'> (a map entry message <Name>Entry); duplicate keys
//	string-like (dictionary too)        are written in order, so readers keep the last
//	map<other K, V>                     repeated <Name>Entry {key = 1; value = 2} (the same wire format
//	                                    as a map), entries in stored order
//	dictionary<values=T>                T: the value each index stands for
//	run_end_encoded<values=T>           T: the value each row stands for
//	union, interval, extension          *FieldError (unsupported)
//
// Names. Field names must match [A-Za-z_][A-Za-z0-9_]* (as for Avro): a
// column or struct field whose name does not, that repeats a name within
// its message, or whose JSON name (protoc's lowerCamelCase) repeats
// another's, is refused with a *FieldError naming it. Nested messages are
// named after their field in CamelCase (struct column "ship_to" is
// message ShipTo; its list elements ShipToItem, its map entries
// ShipToEntry, keys ShipToKey, values ShipToValue), with "_" appended
// while the name is taken in its message.

// Protobuf encodes rows of record batches that share one schema as proto3
// messages of the message NewProtobuf derives from that Arrow schema.
//
// Build it once per stream with NewProtobuf, call Bind for every batch and
// then AppendRow for each of the batch's rows.
type Protobuf struct {
	schema *arrow.Schema
	cols   []pbEncoder
	text   string
	msg    protoreflect.MessageDescriptor
}

// pbEncoder appends the protobuf encoding of one element of the array it
// was last bound to. Implementations are built for one Arrow type.
type pbEncoder interface {
	// bind points the encoder at arr's buffers, once per batch.
	bind(arr arrow.Array)
	// setField sets, at build time, the field the encoder writes: its tag
	// and whether it has implicit presence (zero values not written).
	setField(tag []byte, implicit bool)
	// isNull reports whether element i is null (for a dictionary: its
	// index or its entry; for run-end encoded: its run's value).
	isNull(i int) bool
	// appendField appends element i as the field: tag and value, or
	// nothing when it is null, or zero with implicit presence.
	appendField(dst []byte, i int) []byte
	// appendValue appends element i's value without a tag (a packed or
	// repeated element, a dictionary entry); a null is the zero value.
	appendValue(dst []byte, i int) []byte
}

// NewProtobuf builds a row encoder for schema and derives its proto3 file:
// package pkg (dot-separated names), top-level message name. It returns a
// *FieldError naming the first column (dotted path for nested fields) that
// cannot be represented, and a plain error when pkg or name is not valid.
func NewProtobuf(schema *arrow.Schema, pkg, name string) (*Protobuf, error) {
	if !avroNameOK(name) {
		return nil, fmt.Errorf("encode: invalid protobuf message name %q (want [A-Za-z_][A-Za-z0-9_]*)", name)
	}
	for _, seg := range splitDots(pkg) {
		if !avroNameOK(seg) {
			return nil, fmt.Errorf("encode: invalid protobuf package %q (want dot-separated [A-Za-z_][A-Za-z0-9_]* names)", pkg)
		}
	}
	b := &pbBuilder{imports: map[string]bool{}, comments: map[*descriptorpb.FieldDescriptorProto]string{}}
	top := &descriptorpb.DescriptorProto{Name: proto.String(name)}
	cols, err := b.message(newPbScope(top, "."+pkg+"."+name), schema.Fields(), "")
	if err != nil {
		return nil, err
	}
	file := &descriptorpb.FileDescriptorProto{
		Name:        proto.String(pkg + "." + name + ".proto"),
		Package:     proto.String(pkg),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{top},
	}
	for imp := range b.imports {
		file.Dependency = append(file.Dependency, imp)
	}
	slices.Sort(file.Dependency)
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		return nil, fmt.Errorf("encode: derived protobuf descriptor is invalid: %w", err)
	}
	return &Protobuf{schema: schema, cols: cols, text: protoText(file, b.comments), msg: fd.Messages().Get(0)}, nil
}

// Schema is the .proto text of the derived file (what a schema registry
// stores and protoc compiles).
func (e *Protobuf) Schema() string { return e.text }

// Descriptor is the derived top-level message (for dynamicpb readers).
func (e *Protobuf) Descriptor() protoreflect.MessageDescriptor { return e.msg }

// Bind points the encoder at the columns of rec, whose schema must equal
// the one given to NewProtobuf. It does not retain rec: the caller keeps
// rec alive (and unreleased) while calling AppendRow for its rows.
func (e *Protobuf) Bind(rec arrow.RecordBatch) error {
	if err := checkSchema(e.schema, rec.Schema()); err != nil {
		return err
	}
	for i, c := range e.cols {
		c.bind(rec.Column(i))
	}
	return nil
}

// AppendRow appends row (0 <= row < NumRows) of the bound batch to dst as
// one protobuf message and returns the extended slice. Only the appended
// bytes are written, and nothing is allocated when dst has room for them
// (a message that needs more than dst's spare room grows it once or
// twice). A row of zeros and nulls is an empty message.
func (e *Protobuf) AppendRow(dst []byte, row int) []byte {
	for _, c := range e.cols {
		dst = c.appendField(dst, row)
	}
	return dst
}

// splitDots splits a dotted name into its segments.
func splitDots(s string) []string {
	var out []string
	start := 0
	for k := 0; k <= len(s); k++ {
		if k == len(s) || s[k] == '.' {
			out = append(out, s[start:k])
			start = k + 1
		}
	}
	return out
}

// pbBuilder builds the descriptors and the encoders of a file together.
type pbBuilder struct {
	imports  map[string]bool // well-known type files the file imports
	comments map[*descriptorpb.FieldDescriptorProto]string
}

// pbScope is a message being built: the names taken in it (fields and
// nested types share one namespace) and its full name.
type pbScope struct {
	msg     *descriptorpb.DescriptorProto
	full    string          // ".pkg.Outer.Inner"
	names   map[string]bool // field, nested type and oneof names taken
	entries map[string]bool // map entry names reserved for its map fields
}

func newPbScope(msg *descriptorpb.DescriptorProto, full string) *pbScope {
	return &pbScope{msg: msg, full: full, names: map[string]bool{}, entries: map[string]bool{}}
}

// unique returns base, with "_" appended while that name is taken, and
// takes it.
func (s *pbScope) unique(base string) string {
	name := base
	for s.names[name] {
		name += "_"
	}
	s.names[name] = true
	return name
}

// nested adds a nested message called name (unique in s) and returns its
// scope.
func (s *pbScope) nested(base string) *pbScope {
	name := s.unique(base)
	m := &descriptorpb.DescriptorProto{Name: proto.String(name)}
	s.msg.NestedType = append(s.msg.NestedType, m)
	return newPbScope(m, s.full+"."+name)
}

// pbType is what a field of some Arrow type is in protobuf.
type pbType struct {
	typ      descriptorpb.FieldDescriptorProto_Type
	typeName string         // message or enum: ".pkg.Msg" or ".google.protobuf.X"
	wire     protowire.Type // of one value
	repeated bool           // a list or map: the field is repeated
	message  bool           // a message type: the field has presence
	packed   bool           // a number: packed when repeated
	fixed    int            // packed element width (4, 8), 0 for varints
	comment  string         // what the .proto says about the field
}

// pbMaxField is the highest protobuf field number.
const pbMaxField = 1<<29 - 1

// message builds the fields of scope s's message from fs, at error path
// path.
func (b *pbBuilder) message(s *pbScope, fs []arrow.Field, path string) ([]pbEncoder, error) {
	jsonNames := make(map[string]string, len(fs))
	for _, f := range fs {
		fpath := joinPath(path, f.Name)
		if !avroNameOK(f.Name) {
			return nil, &FieldError{Field: fpath, Reason: fmt.Sprintf(
				"invalid protobuf field name %q (protobuf names must match [A-Za-z_][A-Za-z0-9_]*)", f.Name)}
		}
		if s.names[f.Name] {
			return nil, &FieldError{Field: fpath, Reason: fmt.Sprintf(
				"duplicate field name %q (protobuf message fields must be unique)", f.Name)}
		}
		s.names[f.Name] = true
		jn := pbJSONName(f.Name)
		if other, ok := jsonNames[jn]; ok {
			return nil, &FieldError{Field: fpath, Reason: fmt.Sprintf(
				"protobuf field %q has the JSON name %q of field %q (protoc refuses such messages)", f.Name, jn, other)}
		}
		jsonNames[jn] = f.Name
	}
	for _, f := range fs {
		if mt, ok := pbUnwrap(f.Type).(*arrow.MapType); ok && pbMapKeyOK(mt.KeyType()) {
			entry := pbMapEntryName(f.Name)
			if s.names[entry] {
				return nil, &FieldError{Field: joinPath(path, f.Name), Reason: fmt.Sprintf(
					"its protobuf map entry message %q has the name of another field or entry", entry)}
			}
			s.names[entry], s.entries[entry] = true, true
		}
	}
	if len(fs) > pbMaxField-1000 {
		return nil, &FieldError{Field: path, Reason: fmt.Sprintf("%d fields are more than a protobuf message can number", len(fs))}
	}
	encs := make([]pbEncoder, len(fs))
	num := int32(0)
	for k, f := range fs {
		if num++; num == 19000 { // 19000-19999 are reserved by protobuf
			num = 20000
		}
		enc, err := b.field(s, f.Name, num, f.Type, f.Nullable, joinPath(path, f.Name))
		if err != nil {
			return nil, err
		}
		encs[k] = enc
	}
	return encs, nil
}

// field builds field name (number num) of scope s's message, of Arrow type
// dt, and its encoder.
func (b *pbBuilder) field(s *pbScope, name string, num int32, dt arrow.DataType, nullable bool, path string) (pbEncoder, error) {
	t, enc, err := b.value(s, dt, name, path)
	if err != nil {
		return nil, err
	}
	b.describe(s, name, num, t, enc, nullable)
	return enc, nil
}

// describe adds field name (number num) of type t to scope s's message and
// sets enc's tag and presence.
func (b *pbBuilder) describe(s *pbScope, name string, num int32, t pbType, enc pbEncoder, nullable bool) {
	fd := &descriptorpb.FieldDescriptorProto{
		Name:   proto.String(name),
		Number: proto.Int32(num),
		Label:  descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		Type:   t.typ.Enum(),
	}
	if t.typeName != "" {
		fd.TypeName = proto.String(t.typeName)
	}
	wire, implicit := t.wire, false
	switch {
	case t.repeated:
		fd.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		wire = protowire.BytesType // packed numbers, or one length-delimited element per tag
	case t.message:
	case nullable && t.typeName != pbNullValue:
		// proto3 optional: a synthetic one-field oneof
		fd.Proto3Optional = proto.Bool(true)
		fd.OneofIndex = proto.Int32(int32(len(s.msg.OneofDecl)))
		s.msg.OneofDecl = append(s.msg.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String(s.unique("_" + name))})
	default:
		implicit = true
	}
	enc.setField(protowire.AppendTag(nil, protowire.Number(num), wire), implicit)
	s.msg.Field = append(s.msg.Field, fd)
	if t.comment != "" {
		b.comments[fd] = t.comment
	}
}

const (
	pbNullValue = ".google.protobuf.NullValue"
	pbTimestamp = ".google.protobuf.Timestamp"
	pbDuration  = ".google.protobuf.Duration"
)

// scalar is the pbType of a number, bool or string.
func pbScalar(typ descriptorpb.FieldDescriptorProto_Type) pbType {
	t := pbType{typ: typ}
	switch typ {
	case descriptorpb.FieldDescriptorProto_TYPE_FLOAT:
		t.wire, t.packed, t.fixed = protowire.Fixed32Type, true, 4
	case descriptorpb.FieldDescriptorProto_TYPE_DOUBLE:
		t.wire, t.packed, t.fixed = protowire.Fixed64Type, true, 8
	case descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_BYTES:
		t.wire = protowire.BytesType
	default:
		t.wire, t.packed = protowire.VarintType, true
	}
	return t
}

// pbMessageType is the pbType of a message field.
func pbMessageType(name string) pbType {
	return pbType{typ: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, typeName: name, wire: protowire.BytesType, message: true}
}

// value builds the type and encoder of values of dt held by field name of
// scope s (nested messages they need are declared in s), at error path
// path.
func (b *pbBuilder) value(s *pbScope, dt arrow.DataType, name, path string) (pbType, pbEncoder, error) {
	const (
		i32 = descriptorpb.FieldDescriptorProto_TYPE_INT32
		i64 = descriptorpb.FieldDescriptorProto_TYPE_INT64
		u32 = descriptorpb.FieldDescriptorProto_TYPE_UINT32
		str = descriptorpb.FieldDescriptorProto_TYPE_STRING
	)
	base := pbCamel(name)
	switch dt := dt.(type) {
	case *arrow.NullType:
		b.imports["google/protobuf/struct.proto"] = true
		t := pbScalar(descriptorpb.FieldDescriptorProto_TYPE_ENUM)
		t.typeName = pbNullValue
		return t, &pbNullEncoder{}, nil
	case *arrow.BooleanType:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_BOOL), &pbBoolEncoder{}, nil
	case *arrow.Int8Type:
		return pbScalar(i32), &pbVarintEncoder[int8]{}, nil
	case *arrow.Int16Type:
		return pbScalar(i32), &pbVarintEncoder[int16]{}, nil
	case *arrow.Int32Type:
		return pbScalar(i32), &pbVarintEncoder[int32]{}, nil
	case *arrow.Int64Type:
		return pbScalar(i64), &pbVarintEncoder[int64]{}, nil
	case *arrow.Uint8Type:
		return pbScalar(u32), &pbVarintEncoder[uint8]{}, nil
	case *arrow.Uint16Type:
		return pbScalar(u32), &pbVarintEncoder[uint16]{}, nil
	case *arrow.Uint32Type:
		return pbScalar(u32), &pbVarintEncoder[uint32]{}, nil
	case *arrow.Uint64Type:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_UINT64), &pbVarintEncoder[uint64]{}, nil
	case *arrow.Float16Type:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_FLOAT), &pbFloat16Encoder{}, nil
	case *arrow.Float32Type:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_FLOAT), &pbFixed32Encoder{}, nil
	case *arrow.Float64Type:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_DOUBLE), &pbFixed64Encoder{}, nil
	case *arrow.Decimal32Type, *arrow.Decimal64Type, *arrow.Decimal128Type, *arrow.Decimal256Type:
		text, err := newValueEncoder(dt, path, nil)
		if err != nil {
			return pbType{}, nil, err
		}
		p, sc := dt.(arrow.DecimalType).GetPrecision(), dt.(arrow.DecimalType).GetScale()
		t := pbScalar(str)
		t.comment = fmt.Sprintf("decimal(%d, %d) as text", p, sc)
		return t, &pbDecimalEncoder{text: text}, nil
	case *arrow.StringType:
		return pbScalar(str), &pbStringEncoder[int32]{utf8: true}, nil
	case *arrow.LargeStringType:
		return pbScalar(str), &pbStringEncoder[int64]{utf8: true}, nil
	case *arrow.StringViewType:
		return pbScalar(str), &pbViewEncoder{utf8: true}, nil
	case *arrow.BinaryType:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_BYTES), &pbStringEncoder[int32]{}, nil
	case *arrow.LargeBinaryType:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_BYTES), &pbStringEncoder[int64]{}, nil
	case *arrow.BinaryViewType:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_BYTES), &pbViewEncoder{}, nil
	case *arrow.FixedSizeBinaryType:
		return pbScalar(descriptorpb.FieldDescriptorProto_TYPE_BYTES), &pbFixedBinaryEncoder{width: dt.ByteWidth}, nil
	case *arrow.Date32Type:
		t := pbScalar(i32)
		t.comment = "days since 1970-01-01"
		return t, &pbVarintEncoder[int32]{}, nil
	case *arrow.Date64Type:
		t := pbScalar(i32)
		t.comment = "days since 1970-01-01"
		return t, &pbDaysEncoder{}, nil
	case *arrow.Time32Type:
		t := pbScalar(i32)
		t.comment = unitNames[dt.Unit] + " since midnight"
		return t, &pbVarintEncoder[int32]{}, nil
	case *arrow.Time64Type:
		t := pbScalar(i64)
		t.comment = unitNames[dt.Unit] + " since midnight"
		return t, &pbVarintEncoder[int64]{}, nil
	case *arrow.TimestampType:
		b.imports["google/protobuf/timestamp.proto"] = true
		return pbMessageType(pbTimestamp), newPbTime(dt.Unit, false), nil
	case *arrow.DurationType:
		b.imports["google/protobuf/duration.proto"] = true
		return pbMessageType(pbDuration), newPbTime(dt.Unit, true), nil
	case *arrow.ListType:
		return b.list(s, dt.ElemField(), name, path, &pbOffsetSpans[int32]{})
	case *arrow.LargeListType:
		return b.list(s, dt.ElemField(), name, path, &pbOffsetSpans[int64]{})
	case *arrow.ListViewType:
		return b.list(s, dt.ElemField(), name, path, &pbViewSpans[int32]{})
	case *arrow.LargeListViewType:
		return b.list(s, dt.ElemField(), name, path, &pbViewSpans[int64]{})
	case *arrow.FixedSizeListType:
		return b.list(s, dt.ElemField(), name, path, &pbFixedSpans{n: int(dt.Len())})
	case *arrow.StructType:
		child := s.nested(base)
		fields, err := b.message(child, dt.Fields(), path)
		if err != nil {
			return pbType{}, nil, err
		}
		return pbMessageType(child.full), &pbMessageEncoder{fields: fields}, nil
	case *arrow.MapType:
		return b.mapType(s, dt, name, path)
	case *arrow.DictionaryType:
		t, vals, err := b.value(s, dt.ValueType, name, path)
		if err != nil {
			return pbType{}, nil, err
		}
		enc, err := newPbDictionaryEncoder(dt, vals, !t.repeated, path)
		return t, enc, err
	case *arrow.RunEndEncodedType:
		t, vals, err := b.value(s, dt.Encoded(), name, path)
		if err != nil {
			return pbType{}, nil, err
		}
		enc, err := newPbRunEndEncoder(dt, vals, path)
		return t, enc, err
	}
	return pbType{}, nil, unsupported(path, dt)
}

// unitNames name time units in .proto comments.
var unitNames = map[arrow.TimeUnit]string{
	arrow.Second: "seconds", arrow.Millisecond: "milliseconds", arrow.Microsecond: "microseconds", arrow.Nanosecond: "nanoseconds",
}

// element builds the type and encoder of a list element or a map key or
// value: a list or map there becomes a message (named base in s) whose
// field 1, "value", holds it, as protobuf cannot repeat a repeated field.
func (b *pbBuilder) element(s *pbScope, dt arrow.DataType, base, path string) (pbType, pbEncoder, error) {
	if !pbRepeated(dt) {
		return b.value(s, dt, base, path)
	}
	w := s.nested(pbCamel(base))
	w.names["value"] = true
	inner, err := b.field(w, "value", 1, dt, false, path)
	if err != nil {
		return pbType{}, nil, err
	}
	return pbMessageType(w.full), &pbWrapperEncoder{inner: inner}, nil
}

// list builds a repeated field of elem's values, whose ranges spans reads.
func (b *pbBuilder) list(s *pbScope, elem arrow.Field, name, path string, spans pbSpans) (pbType, pbEncoder, error) {
	et, enc, err := b.element(s, elem.Type, pbCamel(name)+"Item", joinPath(path, elem.Name))
	if err != nil {
		return pbType{}, nil, err
	}
	t := et
	t.repeated, t.message = true, false
	return t, &pbListEncoder{spans: spans, elem: enc, packed: et.packed, fixed: et.fixed}, nil
}

// mapType builds a map field (keys protobuf allows) or a repeated entry
// message (other keys); both are written as entries {key = 1, value = 2}.
func (b *pbBuilder) mapType(s *pbScope, dt *arrow.MapType, name, path string) (pbType, pbEncoder, error) {
	kf, vf := dt.KeyField(), dt.ItemField()
	base := pbCamel(name)
	kt, keys, err := b.element(s, kf.Type, base+"Key", joinPath(path, kf.Name))
	if err != nil {
		return pbType{}, nil, err
	}
	vt, vals, err := b.element(s, vf.Type, base+"Value", joinPath(path, vf.Name))
	if err != nil {
		return pbType{}, nil, err
	}
	var entry *pbScope
	if pbMapKeyOK(kf.Type) {
		entryName := pbMapEntryName(name)
		if !s.entries[entryName] { // a map in a wrapper message: reserve it now
			if s.names[entryName] {
				return pbType{}, nil, &FieldError{Field: path, Reason: fmt.Sprintf(
					"its protobuf map entry message %q has the name of another field or entry", entryName)}
			}
			s.names[entryName] = true
		}
		delete(s.entries, entryName)
		m := &descriptorpb.DescriptorProto{Name: proto.String(entryName), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}}
		s.msg.NestedType = append(s.msg.NestedType, m)
		entry = newPbScope(m, s.full+"."+entryName)
	} else {
		entry = s.nested(base + "Entry")
	}
	b.describe(entry, "key", 1, kt, keys, false)
	b.describe(entry, "value", 2, vt, vals, false)
	t := pbMessageType(entry.full)
	t.repeated, t.message = true, false
	return t, &pbMapEncoder{keys: keys, vals: vals}, nil
}

// pbUnwrap is the type a dictionary or run-end encoded type stands for.
func pbUnwrap(dt arrow.DataType) arrow.DataType {
	for {
		switch t := dt.(type) {
		case *arrow.DictionaryType:
			dt = t.ValueType
		case *arrow.RunEndEncodedType:
			dt = t.Encoded()
		default:
			return dt
		}
	}
}

// pbRepeated reports whether values of dt are a repeated field.
func pbRepeated(dt arrow.DataType) bool {
	switch pbUnwrap(dt).ID() {
	case arrow.LIST, arrow.LARGE_LIST, arrow.LIST_VIEW, arrow.LARGE_LIST_VIEW, arrow.FIXED_SIZE_LIST, arrow.MAP:
		return true
	}
	return false
}

// pbMapKeyOK reports whether a map with keys of dt is a protobuf map: keys
// that are bools, integers or strings.
func pbMapKeyOK(dt arrow.DataType) bool {
	switch pbUnwrap(dt).ID() {
	case arrow.BOOL, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return true
	}
	return false
}

// pbCamel is a field name in CamelCase, as protoc names map entries:
// "ship_to" is "ShipTo".
func pbCamel(s string) string {
	b := camelCase(s, true)
	if len(b) == 0 || ('0' <= b[0] && b[0] <= '9') {
		b = append([]byte{'X'}, b...) // "_" or "_1": a type name needs a letter first
	}
	return string(b)
}

// pbMapEntryName is the name protoc gives the entry message of map field
// name.
func pbMapEntryName(name string) string { return string(camelCase(name, true)) + "Entry" }

// pbJSONName is protoc's JSON name of a field: underscores dropped, the
// letter after one upper-cased.
func pbJSONName(s string) string { return string(camelCase(s, false)) }

// camelCase drops the underscores of s and upper-cases the letter after
// each (and the first letter, with upperFirst).
func camelCase(s string, upperFirst bool) []byte {
	b := make([]byte, 0, len(s)+5)
	upper := upperFirst
	for k := 0; k < len(s); k++ {
		c := s[k]
		switch {
		case c == '_':
			upper = true
		case upper:
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			upper = false
		default:
			b = append(b, c)
		}
	}
	return b
}
