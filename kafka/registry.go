package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/flightsink/flightsink/internal/secret"
)

// RegistryConfig points at a Confluent-compatible schema registry.
type RegistryConfig struct {
	// URL of the registry, e.g. http://registry:8081; empty for none (Avro
	// values are then bare datums).
	URL      string        `yaml:"url"`
	Username string        `yaml:"username"`
	Password secret.Secret `yaml:"password"`
}

// Registry registers value and key schemas and caches their ids.
type Registry struct {
	cl *sr.Client

	mu  sync.Mutex
	ids map[registryKey]int
}

type registryKey struct {
	subject string
	schema  Schema
}

func newRegistry(c RegistryConfig) (*Registry, error) {
	if c.URL == "" {
		return nil, nil
	}
	opts := []sr.ClientOpt{sr.URLs(c.URL)}
	if c.Username != "" {
		pw, err := c.Password.Resolve("kafka.schema_registry.password")
		if err != nil {
			return nil, err
		}
		opts = append(opts, sr.BasicAuth(c.Username, pw))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka.schema_registry.url: %w", err)
	}
	return &Registry{cl: cl, ids: map[registryKey]int{}}, nil
}

// Registry returns the sink's schema registry, nil when none is configured.
func (s *Sink) Registry() *Registry { return s.registry }

// Register registers a schema under subject (a no-op when the registry
// already has it) and returns its id. A refused schema wraps
// ErrSchemaRejected with the registry's answer; an unreachable registry
// wraps ErrUnavailable.
func (r *Registry) Register(ctx context.Context, subject string, schema Schema) (int, error) {
	key := registryKey{subject, schema}
	r.mu.Lock()
	id, ok := r.ids[key]
	r.mu.Unlock()
	if ok {
		return id, nil
	}
	typ := sr.TypeAvro
	switch schema.Type {
	case SchemaProtobuf:
		typ = sr.TypeProtobuf
	case SchemaJSON:
		typ = sr.TypeJSON
	}
	ss, err := r.cl.CreateSchema(ctx, subject, sr.Schema{Schema: schema.Text, Type: typ})
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) {
			return 0, fmt.Errorf("%w: subject %q: HTTP %d: %s", ErrSchemaRejected, subject, re.StatusCode, re.Message)
		}
		return 0, fmt.Errorf("%w: schema registry: %v", ErrUnavailable, err)
	}
	r.mu.Lock()
	r.ids[key] = ss.ID
	r.mu.Unlock()
	return ss.ID, nil
}

// WirePrefix is the Confluent wire format header: magic byte 0 and the
// schema id, big-endian.
func WirePrefix(id int) []byte {
	b := make([]byte, 5)
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	return b
}

// ProtobufWirePrefix is the Confluent wire format header of a protobuf
// message: WirePrefix, then the message-index array of the file's first
// top-level message (written as its one-byte shortcut, 0), as franz-go's
// sr.ConfluentHeader writes it.
func ProtobufWirePrefix(id int) []byte {
	b, _ := new(sr.ConfluentHeader).AppendEncode(nil, id, []int{0}) // its error is always nil
	return b
}
