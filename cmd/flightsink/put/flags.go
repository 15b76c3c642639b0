package put

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/flightsink/flightsink/clients/go/fsclient"
)

// descriptorFlag is one descriptor key as a flag of put. The flag's kind
// (text, yes/no, list, key=value, number) comes from the field of
// fsclient.Descriptor that carries the key, so this table only names and
// explains each key; TestPutHasAFlagForEveryDescriptorKey checks that it
// lists every key the server parses.
type descriptorFlag struct {
	key   string // the descriptor key, as docs/protocol.md names it
	flag  string // the flag's name; "" for the key with "_" and "." as "-"
	usage string
}

// descriptorFlags are every descriptor key put can send. "format" is
// --value-format because --format names the input files' format.
var descriptorFlags = []descriptorFlag{
	{key: "topic", usage: "Kafka topic to write (required)"},
	{key: "key_field", usage: "column whose value is the record key"},
	{key: "timestamp_field", usage: "timestamp column whose value is the record timestamp (default: the produce time)"},
	{key: "delivery", usage: "exactly_once or at_least_once (default: the server's, exactly_once)"},
	{key: "writer_id", usage: "names a resumable exactly-once writer: a re-run of the same command skips the rows it committed"},
	{key: "commit_on_close", usage: "commit the rows after the last checkpoint at a clean end (default true)"},
	{key: "format", flag: "value-format", usage: "record value format: json, avro, protobuf, json_schema, raw_string, raw_bytes (default json)"},
	{key: "json.timestamp_format", usage: "json values: how timestamps are written (docs/json-mapping.md)"},
	{key: "json.decimal", usage: "json values: how decimals are written (docs/json-mapping.md)"},
	{key: "json.include_schema", usage: "json values: wrap each value in Kafka Connect's schema envelope"},
	{key: "value_fields", usage: "comma-separated columns of the record value (default: all)"},
	{key: "exclude_fields", usage: "comma-separated columns left out of the record value"},
	{key: "value_field", usage: "raw formats: the column holding the value"},
	{key: "subject", usage: "registry formats: the value schema's subject"},
	{key: "subject_name_strategy", usage: "registry subjects: topic, record or topic_record"},
	{key: "key_fields", usage: "comma-separated columns forming the record key in --key-format"},
	{key: "key_format", usage: "record key format: string, json, avro, protobuf, json_schema"},
	{key: "tombstone_field", usage: "boolean column: true writes a null value (a tombstone)"},
	{key: "headers_field", usage: "map or list-of-struct column of record headers"},
	{key: "headers", flag: "header", usage: "a header on every record, `KEY=VALUE` (repeatable)"},
	{key: "provenance_headers", usage: "add flightsink-writer, -checkpoint and -row headers to every record"},
	{key: "partition_field", usage: "integer column choosing each record's partition"},
	{key: "topic_field", usage: "text column choosing each row's topic"},
	{key: "on_bad_row", usage: "a row that cannot become a record: fail, skip or dead_letter (default fail)"},
	{key: "dead_letter_topic", usage: "topic of dead-lettered rows (default TOPIC.dlq)"},
	{key: "max_bad_rows", usage: "fail past this many bad rows (>= 1) or this fraction of the rows (< 1); 0: no cap"},
	{key: "report_offsets", usage: "acks and the final message carry the offsets written (for clients that read them; put shows none)"},
}

// flagName is the flag that sets f's key.
func (f descriptorFlag) flagName() string {
	if f.flag != "" {
		return f.flag
	}
	return strings.NewReplacer("_", "-", ".", "-").Replace(f.key)
}

// descriptorFieldTypes maps each json key of fsclient.Descriptor to its
// field's type.
func descriptorFieldTypes() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	t := reflect.TypeOf(fsclient.Descriptor{})
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "-" && name != "" {
			out[name] = t.Field(i).Type
		}
	}
	return out
}

// descriptorValues collects the descriptor flags given on the command line.
type descriptorValues map[string]any

// register defines one flag per entry of descriptorFlags on fl.
func (v descriptorValues) register(fl *flag.FlagSet) {
	types := descriptorFieldTypes()
	for _, f := range descriptorFlags {
		typ, ok := types[f.key]
		if !ok { // a key the client does not know yet travels in Options as text
			typ = reflect.TypeOf("")
		}
		fl.Var(&keyValue{key: f.key, typ: typ, into: v}, f.flagName(), f.usage)
	}
}

// descriptor turns the flags given into the client's Descriptor; topic is
// required.
func (v descriptorValues) descriptor() (fsclient.Descriptor, error) {
	var d fsclient.Descriptor
	if _, ok := v["topic"]; !ok {
		return d, fmt.Errorf("put: --topic is required")
	}
	types := descriptorFieldTypes()
	known := map[string]any{}
	for k, val := range v {
		if _, ok := types[k]; ok {
			known[k] = val
		} else {
			if d.Options == nil {
				d.Options = map[string]any{}
			}
			d.Options[k] = val
		}
	}
	b, err := json.Marshal(known)
	if err != nil {
		return d, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	opts := d.Options
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("put: descriptor flags: %w", err)
	}
	d.Options = opts
	return d, nil
}

// keyValue is the flag.Value of one descriptor key: it records the key
// only when the flag is given.
type keyValue struct {
	key  string
	typ  reflect.Type
	into descriptorValues
}

func (k *keyValue) String() string {
	if k == nil || k.into == nil {
		return ""
	}
	if v, ok := k.into[k.key]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

// IsBoolFlag lets a yes/no key be given as --flag alone.
func (k *keyValue) IsBoolFlag() bool {
	if k == nil || k.typ == nil {
		return false
	}
	return k.typ.Kind() == reflect.Bool || (k.typ.Kind() == reflect.Pointer && k.typ.Elem().Kind() == reflect.Bool)
}

func (k *keyValue) Set(s string) error {
	switch {
	case k.IsBoolFlag():
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		k.into[k.key] = b
	case k.typ.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		k.into[k.key] = f
	case k.typ.Kind() == reflect.Slice:
		var list []string
		if prev, ok := k.into[k.key].([]string); ok {
			list = prev
		}
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
		k.into[k.key] = list
	case k.typ.Kind() == reflect.Map:
		name, val, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return fmt.Errorf("%q is not KEY=VALUE", s)
		}
		m, _ := k.into[k.key].(map[string]string)
		if m == nil {
			m = map[string]string{}
		}
		m[name] = val
		k.into[k.key] = m
	default:
		if s == "" {
			return fmt.Errorf("empty; leave the flag out for the server's default")
		}
		k.into[k.key] = s
	}
	return nil
}

// DescriptorFlags maps each descriptor key put can send to the flag that
// sets it (without the leading dashes).
func DescriptorFlags() map[string]string {
	out := make(map[string]string, len(descriptorFlags))
	for _, f := range descriptorFlags {
		out[f.key] = f.flagName()
	}
	return out
}
