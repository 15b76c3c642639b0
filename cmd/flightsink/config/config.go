// Package config loads flightsink's configuration: defaults, then a YAML
// file, then FLIGHTSINK_* environment variables (for containers); the binary
// applies its flags last and validates the result.
package config

import (
	"fmt"
	"net"
	"os"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/kafka"
)

// Config is the whole configuration, one section per package.
type Config struct {
	Flight  flightsink.Config     `yaml:"flight"`
	Kafka   kafka.Config          `yaml:"kafka"`
	Auth    flightsink.AuthConfig `yaml:"auth"`
	Metrics Metrics               `yaml:"metrics"`
	Log     Log                   `yaml:"log"`
}

// Metrics configures the HTTP listener for /metrics, /healthz and /readyz.
type Metrics struct {
	// Listen is host:port; empty turns the listener off.
	Listen string `yaml:"listen"`
	// CheckInterval is how often readiness checks that Kafka answers.
	CheckInterval time.Duration `yaml:"check_interval"`
}

// Log configures the structured logs.
type Log struct {
	// Level is one of trace, debug, info, warn, error.
	Level string `yaml:"level"`
	// Format is json (one object a line, for log shippers) or console.
	Format string `yaml:"format"`
}

// Default returns every setting at its documented default.
func Default() Config {
	return Config{Flight: flightsink.DefaultConfig(), Kafka: kafka.DefaultConfig(), Auth: flightsink.DefaultAuthConfig(),
		Log:     Log{Level: "info", Format: "json"},
		Metrics: Metrics{Listen: "127.0.0.1:9464", CheckInterval: 5 * time.Second}}
}

// Validate checks every section, as far as it can without the network:
// secrets resolve, TLS files load, credentials fit the listener. It names
// the setting at fault and changes nothing (see KafkaConfig for what is
// derived). The binary runs it before its first network call, so a bad
// setting is never reported as Kafka being unavailable.
func (c Config) Validate() error {
	if err := flightsink.CheckConfig(c.Flight, c.Auth); err != nil {
		return err
	}
	kc := c.KafkaConfig()
	if err := kc.Validate(); err != nil {
		return err
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen: %q must be host:port (or empty: no metrics listener): %v", c.Metrics.Listen, err)
		}
	}
	if c.Metrics.CheckInterval < 100*time.Millisecond {
		return fmt.Errorf("metrics.check_interval: %v must be at least 100ms", c.Metrics.CheckInterval)
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return fmt.Errorf("log.format: %q is not one of json, console", c.Log.Format)
	}
	return nil
}

// KafkaConfig is the kafka section with what other sections decide: the
// exactly-once producer pool has one transactional id per possible stream,
// flight.max_streams. Pass it, not c.Kafka, to kafka.NewSink.
func (c Config) KafkaConfig() kafka.Config {
	k := c.Kafka
	k.MaxExactlyOnceStreams = c.Flight.MaxStreams
	return k
}

// Load reads path over the defaults (a missing file is an error; pass "" for
// defaults only), then applies the FLIGHTSINK_* variables of environ
// (os.Environ() in the binary; see env.go). Unknown keys and variables are
// errors naming the nearest setting; it does not validate (Validate does).
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("reading config: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		if err := decodeNode(reflect.ValueOf(&cfg).Elem(), &doc, ""); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// MemoryBaseBytes is the part of a server's memory that does not grow with
// its streams: the Go runtime, gRPC, the Kafka clients.
const MemoryBaseBytes = 128 << 20

// MemoryBound is config.yaml's memory formula: the most resident memory
// (RSS) a server with these settings reaches with every stream open and
// writing as fast as it can,
//
//	128 MiB + 2 × flight.max_streams × (1.25 × kafka.max_buffered_bytes
//	    + flight.receive_window_bytes + 3 × flight.max_message_bytes + decoded)
//	    + 2 × flight.max_queued_streams × flight.receive_window_bytes
//
// per stream: its unacknowledged records, plus the chunk being built and
// reused buffers (the 0.25); what the client may send ahead; the message
// being received, the one being decoded and the next; decoded is
// 2 × flight.max_batch_bytes when clients compress IPC bodies or send
// dictionaries (a decompressed batch, the stream's dictionaries), else 0
// (uncompressed bodies are read in place); a stream waiting for a slot
// holds what its client sent ahead. The 2 is the Go collector's
// headroom (GOGC=100); GOMEMLIMIT set a little under a container's limit
// trades it for collector CPU. The README and deploy/kubernetes quote it.
func MemoryBound(c Config, compressedOrDictionaries bool) int64 {
	perStream := int64(c.Kafka.MaxBufferedBytes)*5/4 + int64(c.Flight.ReceiveWindowBytes) + 3*int64(c.Flight.MaxMessageBytes)
	if compressedOrDictionaries {
		perStream += 2 * c.Flight.MaxBatchBytes
	}
	return MemoryBaseBytes + 2*int64(c.Flight.MaxStreams)*perStream + 2*int64(c.Flight.MaxQueuedStreams)*int64(c.Flight.ReceiveWindowBytes)
}
