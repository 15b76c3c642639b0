package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightsink/flightsink/flightsink"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestShippedConfigIsTheDefaults: config.yaml documents every setting at
// its default, so loading it must give exactly Default().
func TestShippedConfigIsTheDefaults(t *testing.T) {
	cfg, err := Load("../../../config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(cfg, Default()) {
		t.Fatalf("config.yaml differs from the defaults:\n got %+v\nwant %+v", cfg, Default())
	}
}

func equal(a, b Config) bool {
	return strings.Join(a.Kafka.Brokers, ",") == strings.Join(b.Kafka.Brokers, ",") &&
		a.Flight == b.Flight && a.Log == b.Log && a.Kafka.ClientID == b.Kafka.ClientID &&
		a.Kafka.Linger == b.Kafka.Linger && a.Kafka.BatchMaxBytes == b.Kafka.BatchMaxBytes &&
		a.Kafka.Compression == b.Kafka.Compression && a.Kafka.MaxBufferedBytes == b.Kafka.MaxBufferedBytes &&
		a.Kafka.ProduceTimeout == b.Kafka.ProduceTimeout && a.Kafka.CreateTopics == b.Kafka.CreateTopics &&
		a.Kafka.TransactionalIDPrefix == b.Kafka.TransactionalIDPrefix && a.Kafka.Replica == b.Kafka.Replica &&
		a.Kafka.TransactionTimeout == b.Kafka.TransactionTimeout && a.Kafka.MaxExactlyOnceStreams == b.Kafka.MaxExactlyOnceStreams &&
		a.Kafka.ProgressTopic == b.Kafka.ProgressTopic && a.Kafka.ProgressTopicPartitions == b.Kafka.ProgressTopicPartitions &&
		a.Kafka.MaxTransactionRows == b.Kafka.MaxTransactionRows && a.Metrics == b.Metrics &&
		a.Auth.AllowAnonymous == b.Auth.AllowAnonymous && a.Auth.AllowInsecureTransport == b.Auth.AllowInsecureTransport &&
		len(a.Auth.Tokens) == len(b.Auth.Tokens) && len(a.Auth.Users) == len(b.Auth.Users) &&
		len(a.Auth.Principals) == len(b.Auth.Principals) && len(a.Auth.SessionKeys) == len(b.Auth.SessionKeys) &&
		a.Auth.SessionTTL == b.Auth.SessionTTL && a.Auth.ClientCertPrincipal == b.Auth.ClientCertPrincipal &&
		a.Auth.MaxFailures == b.Auth.MaxFailures && a.Auth.FailureWindow == b.Auth.FailureWindow
}

func TestFileThenEnvironment(t *testing.T) {
	p := writeFile(t, "flight:\n  listen: 0.0.0.0:9000\nkafka:\n  brokers: [a:1]\n  linger: 20ms\n")
	cfg, err := Load(p, []string{"FLIGHTSINK_KAFKA_BROKERS=b:1, c:2", "FLIGHTSINK_KAFKA_CREATE_TOPICS=true",
		"FLIGHTSINK_FLIGHT_DEFAULT_DELIVERY=at_least_once", "FLIGHTSINK_AUTH_ALLOW_ANONYMOUS=true", "OTHER=x"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Flight.Listen != "0.0.0.0:9000" || cfg.Kafka.Linger != 20*time.Millisecond {
		t.Errorf("file values not applied: %+v", cfg)
	}
	if strings.Join(cfg.Kafka.Brokers, ",") != "b:1,c:2" || !cfg.Kafka.CreateTopics || cfg.Flight.DefaultDelivery != flightsink.AtLeastOnce {
		t.Errorf("environment not applied: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	if _, err := Load(writeFile(t, "kafka:\n  brokerz: [a:1]\n"), nil); err == nil || !strings.Contains(err.Error(), "brokerz") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := Load("", []string{"FLIGHTSINK_KAFKA_LINGER=soon"}); err == nil || !strings.Contains(err.Error(), "FLIGHTSINK_KAFKA_LINGER") {
		t.Errorf("bad env value: %v", err)
	}
	for env, setting := range map[string]string{
		"FLIGHTSINK_KAFKA_COMPRESSION=brotli":          "kafka.compression",
		"FLIGHTSINK_FLIGHT_DEFAULT_DELIVERY=sometimes": "flight.default_delivery",
		"FLIGHTSINK_KAFKA_REPLICA=a/b":                 "kafka.replica",
		"FLIGHTSINK_FLIGHT_LISTEN=nowhere":             "flight.listen",
		"FLIGHTSINK_LOG_LEVEL=loud":                    "log.level",
	} {
		cfg, err := Load("", []string{env})
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), setting) {
			t.Errorf("%s: %v, want an error naming %s", env, err, setting)
		}
	}
}

// TestAuthFromEnvironment: the auth switches come from FLIGHTSINK_AUTH_*
// variables; lists of secrets cannot (one variable holds no structure) and
// say where they go instead, rather than crashing.
func TestAuthFromEnvironment(t *testing.T) {
	cfg, err := Load("", []string{"FLIGHTSINK_AUTH_ALLOW_INSECURE_TRANSPORT=true", "FLIGHTSINK_AUTH_CLIENT_CERT_PRINCIPAL=san_dns",
		"FLIGHTSINK_AUTH_MAX_FAILURES=5", "FLIGHTSINK_AUTH_FAILURE_WINDOW=30s"})
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Auth
	if !a.AllowInsecureTransport || a.ClientCertPrincipal != "san_dns" || a.MaxFailures != 5 || a.FailureWindow != 30*time.Second {
		t.Errorf("environment not applied: %+v", a)
	}
	if d := Default().Auth; d.MaxFailures != 10 || d.FailureWindow != time.Minute || d.SessionTTL != 12*time.Hour {
		t.Errorf("auth defaults %+v, want 10 failures a minute and 12h sessions (config.yaml)", d)
	}
	for _, env := range []string{"FLIGHTSINK_AUTH_SESSION_KEYS=k", "FLIGHTSINK_AUTH_TOKENS=t"} {
		name, _, _ := strings.Cut(env, "=")
		if _, err := Load("", []string{env}); err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "config file") {
			t.Errorf("%s: %v, want an error naming the variable and the config file", env, err)
		}
	}
}

// TestValidateChangesNothing: Validate only checks; what other settings
// decide (the exactly-once pool from flight.max_streams) is KafkaConfig's.
func TestValidateChangesNothing(t *testing.T) {
	cfg := Default()
	cfg.Flight.MaxStreams = 7
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Kafka.MaxExactlyOnceStreams, Default().Kafka.MaxExactlyOnceStreams; got != want {
		t.Errorf("Validate set kafka's pool size to %d (was %d)", got, want)
	}
	if got := cfg.KafkaConfig().MaxExactlyOnceStreams; got != 7 {
		t.Errorf("KafkaConfig's pool size is %d, want flight.max_streams 7", got)
	}
	cfg.Flight.MaxStreams = 200_000
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "flight.max_streams") {
		t.Errorf("200000 streams: %v, want an error naming flight.max_streams", err)
	}
}
