package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/url"
	"sort"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

// valueDecoder shows record values: JSON as itself, values a schema
// registry framed (magic byte 0 and a schema id: the Confluent wire format)
// decoded through the registry when one is given (Avro to JSON, JSON Schema
// payloads as themselves), anything else as text.
type valueDecoder struct {
	registry *sr.Client // nil: no --registry
	url      string
	schemas  map[int]*registrySchema
	warn     *warnOnce
}

type registrySchema struct {
	typ  sr.SchemaType
	avro avro.Schema
	err  error
}

func newValueDecoder(registryURL string, warnings io.Writer) *valueDecoder {
	d := &valueDecoder{schemas: map[int]*registrySchema{}, warn: &warnOnce{w: warnings, seen: map[string]bool{}}}
	if registryURL == "" {
		return d
	}
	opts := []sr.ClientOpt{}
	if u, err := url.Parse(registryURL); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		opts = append(opts, sr.BasicAuth(u.User.Username(), pw))
		u.User = nil
		registryURL = u.String()
	}
	d.url = registryURL
	cl, err := sr.NewClient(append(opts, sr.URLs(registryURL))...)
	if err != nil {
		d.warn.printf("--registry %s: %v; values are shown undecoded", registryURL, err)
		return d
	}
	d.registry = cl
	return d
}

// decode is the JSON shown as r's value.
func (d *valueDecoder) decode(ctx context.Context, r *kgo.Record) json.RawMessage {
	v := r.Value
	if len(v) < 5 || v[0] != 0 {
		return jsonValue(v)
	}
	id := int(binary.BigEndian.Uint32(v[1:5]))
	if d.registry == nil {
		d.warn.printf("values of %s look framed by a schema registry (magic byte 0, schema id %d): pass --registry URL to decode them", r.Topic, id)
		return jsonValue(v)
	}
	s := d.schema(ctx, id)
	if s.err != nil {
		d.warn.printf("schema id %d from %s: %v; such values are shown as base64", id, d.url, s.err)
		return base64JSON(v)
	}
	switch s.typ {
	case sr.TypeAvro:
		out, err := avroToJSON(s.avro, v[5:])
		if err != nil {
			d.warn.printf("a value of %s partition %d offset %d does not decode with schema id %d: %v; shown as base64", r.Topic, r.Partition, r.Offset, id, err)
			return base64JSON(v)
		}
		return out
	case sr.TypeJSON:
		return jsonValue(v[5:])
	}
	d.warn.printf("schema id %d is %s: tail does not decode it yet; such values are shown as base64", id, s.typ)
	return base64JSON(v)
}

// schema fetches (once) and parses a schema by id.
func (d *valueDecoder) schema(ctx context.Context, id int) *registrySchema {
	if s, ok := d.schemas[id]; ok {
		return s
	}
	s := &registrySchema{}
	d.schemas[id] = s
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := d.registry.SchemaByID(ctx, id)
	if err != nil {
		s.err = err
		return s
	}
	s.typ = got.Type
	if s.typ == sr.TypeAvro {
		s.avro, s.err = avro.ParseWithCache(got.Schema, "", &avro.SchemaCache{})
	}
	return s
}

func base64JSON(v []byte) json.RawMessage {
	b, _ := json.Marshal(base64.StdEncoding.EncodeToString(v))
	return b
}

// avroToJSON decodes one Avro datum and writes it as JSON: records with
// their fields in schema order, unions as the chosen branch's value,
// decimals as text with the schema's scale ("12.30"), timestamps as
// RFC 3339 UTC, dates as 2006-01-02, bytes and fixed as base64.
func avroToJSON(schema avro.Schema, data []byte) (json.RawMessage, error) {
	var v any
	if err := avro.Unmarshal(schema, data, &v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeAvroJSON(&buf, schema, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeAvroJSON(buf *bytes.Buffer, schema avro.Schema, v any) error {
	if v == nil {
		buf.WriteString("null")
		return nil
	}
	switch s := schema.(type) {
	case *avro.RefSchema:
		return writeAvroJSON(buf, s.Schema(), v)
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("record %s decoded as %T", s.FullName(), v)
		}
		buf.WriteByte('{')
		for i, f := range s.Fields() {
			if i > 0 {
				buf.WriteByte(',')
			}
			name, _ := json.Marshal(f.Name())
			buf.Write(name)
			buf.WriteByte(':')
			if err := writeAvroJSON(buf, f.Type(), m[f.Name()]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case *avro.UnionSchema:
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			for name, inner := range m {
				for _, branch := range s.Types() {
					if n, ok := branch.(avro.NamedSchema); (ok && n.FullName() == name) || string(branch.Type()) == name {
						return writeAvroJSON(buf, branch, inner)
					}
				}
			}
		}
		for _, branch := range s.Types() { // null and one other type: the library gives the value itself
			if branch.Type() != avro.Null {
				return writeAvroJSON(buf, branch, v)
			}
		}
	case *avro.ArraySchema:
		items, ok := v.([]any)
		if !ok {
			return fmt.Errorf("array decoded as %T", v)
		}
		buf.WriteByte('[')
		for i, item := range items {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeAvroJSON(buf, s.Items(), item); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("map decoded as %T", v)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			name, _ := json.Marshal(k)
			buf.Write(name)
			buf.WriteByte(':')
			if err := writeAvroJSON(buf, s.Values(), m[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case *avro.PrimitiveSchema:
		return writeAvroScalar(buf, s.Logical(), v)
	case *avro.FixedSchema:
		return writeAvroScalar(buf, s.Logical(), v)
	}
	return writeAvroScalar(buf, nil, v)
}

// writeAvroScalar writes a primitive, fixed or enum value.
func writeAvroScalar(buf *bytes.Buffer, logical avro.LogicalSchema, v any) error {
	var out any = v
	switch x := v.(type) {
	case *big.Rat:
		scale := 0
		if d, ok := logical.(*avro.DecimalLogicalSchema); ok {
			scale = d.Scale()
		}
		out = x.FloatString(scale)
	case time.Time:
		if logical != nil && logical.Type() == avro.Date {
			out = x.UTC().Format("2006-01-02")
		} else {
			out = x.UTC().Format(time.RFC3339Nano)
		}
	case time.Duration: // time-millis, time-micros: the time of day
		out = fmt.Sprintf("%02d:%02d:%02d.%06d", int(x.Hours()), int(x.Minutes())%60, int(x.Seconds())%60, (x % time.Second).Microseconds())
	case []byte:
		out = base64.StdEncoding.EncodeToString(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			out = fmt.Sprint(x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			out = fmt.Sprint(x)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}
