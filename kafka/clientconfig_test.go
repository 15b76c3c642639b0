package kafka

import (
	"strings"
	"testing"
	"time"
)

// TestClientConfigMapsStandardProperties: a platform team's producer
// properties land on the typed settings they mean.
func TestClientConfigMapsStandardProperties(t *testing.T) {
	c := DefaultConfig()
	c.ClientConfig = map[string]string{
		"bootstrap.servers":                     "k1:9093, k2:9093",
		"client.id":                             "loader",
		"linger.ms":                             "20",
		"batch.size":                            "262144",
		"compression.type":                      "zstd",
		"delivery.timeout.ms":                   "120000",
		"transaction.timeout.ms":                "90000",
		"security.protocol":                     "SASL_SSL",
		"sasl.mechanism":                        "SCRAM-SHA-512",
		"sasl.jaas.config":                      `org.apache.kafka.common.security.scram.ScramLoginModule required username="fs" password="s3cret";`,
		"ssl.truststore.type":                   "PEM",
		"ssl.truststore.location":               "/etc/kafka/ca.pem",
		"client.rack":                           "eu-west-1a",
		"request.timeout.ms":                    "30000",
		"enable.idempotence":                    "true",
		"acks":                                  "all",
		"max.in.flight.requests.per.connection": "5",
	}
	got, opts, err := c.ApplyClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Brokers, ",") != "k1:9093,k2:9093" || got.ClientID != "loader" || got.Linger != 20*time.Millisecond ||
		got.BatchMaxBytes != 262144 || got.Compression != "zstd" || got.ProduceTimeout != 2*time.Minute ||
		got.TransactionTimeout != 90*time.Second || !got.TLS.Enabled || got.TLS.CAFile != "/etc/kafka/ca.pem" ||
		got.SASL.Mechanism != "SCRAM-SHA-512" || got.SASL.Username != "fs" || got.SASL.Password.Value != "s3cret" {
		t.Errorf("applied: %+v", got)
	}
	if len(opts) != 3 { // client.rack, request.timeout.ms, max.in.flight
		t.Errorf("%d franz-go options, want 3", len(opts))
	}
	if got.ClientConfig != nil || c.Linger != DefaultConfig().Linger {
		t.Error("ApplyClientConfig changed its receiver or kept the properties")
	}
}

// TestClientConfigRefusals: what flightsink cannot honour, or what would
// break its guarantees, is an error naming the property.
func TestClientConfigRefusals(t *testing.T) {
	for props, want := range map[string]string{
		"enable.idempotence=false":                 "always idempotent",
		"acks=1":                                   "acks=all",
		"transactional.id=mine":                    "owns its transactional ids",
		"retries=3":                                "kafka.produce_timeout",
		"ssl.truststore.type=JKS":                  "only PEM trust stores",
		"ssl.endpoint.identification.algorithm=":   "verifies the brokers' host names",
		"value.serializer=x":                       "drop the serializer",
		"fetch.min.bytes=1":                        "not a property flightsink can honour",
		"linger.ms=soon":                           "not a number of milliseconds",
		"security.protocol=SSLv3":                  "not one of PLAINTEXT",
		"max.in.flight.requests.per.connection=10": "1 to 5",
	} {
		name, value, _ := strings.Cut(props, "=")
		c := DefaultConfig()
		c.ClientConfig = map[string]string{name: value}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "kafka.client_config: ") || !strings.Contains(err.Error(), name) ||
			!strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming it and %q", props, err, want)
		}
	}
	// A property for a setting the configuration also sets is ambiguous.
	c := DefaultConfig()
	c.Linger = 50 * time.Millisecond
	c.ClientConfig = map[string]string{"linger.ms": "10"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "linger.ms sets kafka.linger, which the configuration also sets") {
		t.Errorf("linger twice: %v", err)
	}
	// The mapped values are validated like typed ones.
	c = DefaultConfig()
	c.ClientConfig = map[string]string{"compression.type": "brotli"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "kafka.compression") {
		t.Errorf("compression.type=brotli: %v", err)
	}
}
