package kafka

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/internal/secret"
)

// kafka.client_config takes producer properties by their standard Java or
// librdkafka names, as a platform team hands them out, and maps each onto
// a typed setting (linger.ms → kafka.linger) or a franz-go option
// (client.rack → kgo.Rack). A property flightsink cannot honour, or one
// that would break its guarantees (enable.idempotence=false, acks other
// than all, transactional.id), is an error naming it. docs/kafka-properties.md
// has the table.

// clientProperty applies one property's value.
type clientProperty struct {
	// setting is the typed setting it maps onto ("" for a franz-go option).
	setting string
	apply   func(c *Config, opts *[]kgo.Opt, v string) error
}

func millis(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a number of milliseconds", v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

func setMillis(dst func(*Config) *time.Duration) func(*Config, *[]kgo.Opt, string) error {
	return func(c *Config, _ *[]kgo.Opt, v string) error {
		d, err := millis(v)
		if err == nil {
			*dst(c) = d
		}
		return err
	}
}

func optMillis(opt func(time.Duration) kgo.Opt) func(*Config, *[]kgo.Opt, string) error {
	return func(_ *Config, opts *[]kgo.Opt, v string) error {
		d, err := millis(v)
		if err == nil {
			*opts = append(*opts, opt(d))
		}
		return err
	}
}

func setString(dst func(*Config) *string) func(*Config, *[]kgo.Opt, string) error {
	return func(c *Config, _ *[]kgo.Opt, v string) error {
		*dst(c) = strings.TrimSpace(v)
		return nil
	}
}

func refuse(why string) func(*Config, *[]kgo.Opt, string) error {
	return func(*Config, *[]kgo.Opt, string) error { return fmt.Errorf("%s", why) }
}

// jaasCredential reads username and password from a Java sasl.jaas.config
// (PlainLoginModule or ScramLoginModule).
var jaasCredential = regexp.MustCompile(`(username|password)\s*=\s*"([^"]*)"`)

// clientProperties are the properties kafka.client_config takes.
var clientProperties = map[string]clientProperty{
	"bootstrap.servers": {"kafka.brokers", func(c *Config, _ *[]kgo.Opt, v string) error {
		c.Brokers = nil
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		return nil
	}},
	"client.id":              {"kafka.client_id", setString(func(c *Config) *string { return &c.ClientID })},
	"linger.ms":              {"kafka.linger", setMillis(func(c *Config) *time.Duration { return &c.Linger })},
	"queue.buffering.max.ms": {"kafka.linger", setMillis(func(c *Config) *time.Duration { return &c.Linger })},
	"batch.size": {"kafka.batch_max_bytes", func(c *Config, _ *[]kgo.Opt, v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a number of bytes", v)
		}
		c.BatchMaxBytes = int32(n)
		return nil
	}},
	"compression.type":       {"kafka.compression", setString(func(c *Config) *string { return &c.Compression })},
	"compression.codec":      {"kafka.compression", setString(func(c *Config) *string { return &c.Compression })},
	"delivery.timeout.ms":    {"kafka.produce_timeout", setMillis(func(c *Config) *time.Duration { return &c.ProduceTimeout })},
	"message.timeout.ms":     {"kafka.produce_timeout", setMillis(func(c *Config) *time.Duration { return &c.ProduceTimeout })},
	"transaction.timeout.ms": {"kafka.transaction_timeout", setMillis(func(c *Config) *time.Duration { return &c.TransactionTimeout })},
	"security.protocol": {"kafka.tls.enabled", func(c *Config, _ *[]kgo.Opt, v string) error {
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "PLAINTEXT", "SASL_PLAINTEXT":
			c.TLS.Enabled = false
		case "SSL", "SASL_SSL":
			c.TLS.Enabled = true
		default:
			return fmt.Errorf("%q is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL", v)
		}
		return nil
	}},
	"sasl.mechanism":  {"kafka.sasl.mechanism", setString(func(c *Config) *string { return &c.SASL.Mechanism })},
	"sasl.mechanisms": {"kafka.sasl.mechanism", setString(func(c *Config) *string { return &c.SASL.Mechanism })},
	"sasl.username":   {"kafka.sasl.username", setString(func(c *Config) *string { return &c.SASL.Username })},
	"sasl.password": {"kafka.sasl.password", func(c *Config, _ *[]kgo.Opt, v string) error {
		c.SASL.Password = secret.Secret{Value: v}
		return nil
	}},
	"sasl.jaas.config": {"kafka.sasl.username and kafka.sasl.password", func(c *Config, _ *[]kgo.Opt, v string) error {
		if !strings.Contains(v, "PlainLoginModule") && !strings.Contains(v, "ScramLoginModule") {
			return fmt.Errorf("only PlainLoginModule and ScramLoginModule credentials can be read; use kafka.sasl for other mechanisms")
		}
		for _, m := range jaasCredential.FindAllStringSubmatch(v, -1) {
			if m[1] == "username" {
				c.SASL.Username = m[2]
			} else {
				c.SASL.Password = secret.Secret{Value: m[2]}
			}
		}
		if c.SASL.Username == "" || !c.SASL.Password.IsSet() {
			return fmt.Errorf(`needs username="..." and password="..."`)
		}
		return nil
	}},
	"ssl.ca.location":          {"kafka.tls.ca_file", setString(func(c *Config) *string { return &c.TLS.CAFile })},
	"ssl.certificate.location": {"kafka.tls.cert_file", setString(func(c *Config) *string { return &c.TLS.CertFile })},
	"ssl.key.location":         {"kafka.tls.key_file", setString(func(c *Config) *string { return &c.TLS.KeyFile })},
	"ssl.truststore.location":  {"kafka.tls.ca_file", setString(func(c *Config) *string { return &c.TLS.CAFile })},
	"ssl.truststore.type": {"", func(_ *Config, _ *[]kgo.Opt, v string) error {
		if !strings.EqualFold(strings.TrimSpace(v), "PEM") {
			return fmt.Errorf("%q: only PEM trust stores can be read (keytool -exportcert -rfc turns a JKS entry into PEM)", v)
		}
		return nil
	}},
	// A PEM key store holds the key and its certificate chain in one file.
	"ssl.keystore.location": {"kafka.tls.cert_file and kafka.tls.key_file", func(c *Config, _ *[]kgo.Opt, v string) error {
		c.TLS.CertFile, c.TLS.KeyFile = strings.TrimSpace(v), strings.TrimSpace(v)
		return nil
	}},
	"ssl.keystore.type": {"", func(_ *Config, _ *[]kgo.Opt, v string) error {
		if !strings.EqualFold(strings.TrimSpace(v), "PEM") {
			return fmt.Errorf("%q: only PEM key stores can be read (openssl pkcs12 -nodes turns a PKCS12 store into PEM)", v)
		}
		return nil
	}},
	"ssl.endpoint.identification.algorithm": {"", func(_ *Config, _ *[]kgo.Opt, v string) error {
		if !strings.EqualFold(strings.TrimSpace(v), "https") {
			return fmt.Errorf("%q: flightsink always verifies the brokers' host names (use kafka.tls.server_name for another name)", v)
		}
		return nil
	}},
	"client.rack":                        {"", func(_ *Config, opts *[]kgo.Opt, v string) error { *opts = append(*opts, kgo.Rack(v)); return nil }},
	"request.timeout.ms":                 {"", optMillis(func(d time.Duration) kgo.Opt { return kgo.ProduceRequestTimeout(d) })},
	"metadata.max.age.ms":                {"", optMillis(kgo.MetadataMaxAge)},
	"connections.max.idle.ms":            {"", optMillis(kgo.ConnIdleTimeout)},
	"socket.connection.setup.timeout.ms": {"", optMillis(kgo.DialTimeout)},
	"retry.backoff.ms": {"", optMillis(func(d time.Duration) kgo.Opt {
		return kgo.RetryBackoffFn(func(int) time.Duration { return d })
	})},
	"max.in.flight.requests.per.connection": {"", func(_ *Config, opts *[]kgo.Opt, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 5 {
			return fmt.Errorf("%q must be 1 to 5 (idempotent producers keep order with at most 5)", v)
		}
		*opts = append(*opts, kgo.MaxProduceRequestsInflightPerBroker(n))
		return nil
	}},
	"enable.idempotence": {"", func(_ *Config, _ *[]kgo.Opt, v string) error {
		if !strings.EqualFold(strings.TrimSpace(v), "true") {
			return fmt.Errorf("%q: flightsink's producers are always idempotent (exactly-once and ordered retries need it)", v)
		}
		return nil
	}},
	"acks": {"", func(_ *Config, _ *[]kgo.Opt, v string) error {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "all", "-1":
			return nil
		}
		return fmt.Errorf("%q: flightsink acknowledges a checkpoint only once every in-sync replica has it (acks=all)", v)
	}},
	"retries": {"", func(_ *Config, _ *[]kgo.Opt, v string) error {
		if strings.TrimSpace(v) == "2147483647" {
			return nil
		}
		return fmt.Errorf("%q: flightsink retries until kafka.produce_timeout (delivery.timeout.ms) instead of counting", v)
	}},
	"transactional.id": {"", refuse("flightsink owns its transactional ids (kafka.transactional_id_prefix, kafka.replica)")},
	"key.serializer":   {"", refuse("flightsink writes the bytes its formats make; drop the serializer")},
	"value.serializer": {"", refuse("flightsink writes the bytes its formats make; drop the serializer")},
}

// ClientConfigProperties lists the properties kafka.client_config takes.
func ClientConfigProperties() []string {
	out := make([]string, 0, len(clientProperties))
	for p := range clientProperties {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// ApplyClientConfig returns c with kafka.client_config mapped onto its
// typed settings, and the franz-go options of the properties that have no
// typed setting. A property that is unknown, malformed, or would break
// flightsink's guarantees is an error naming it; so is one that sets a
// typed setting the configuration also sets to something else.
func (c Config) ApplyClientConfig() (Config, []kgo.Opt, error) {
	if len(c.ClientConfig) == 0 {
		return c, nil, nil
	}
	out := c
	out.ClientConfig = nil
	def := DefaultConfig()
	var opts []kgo.Opt
	names := make([]string, 0, len(c.ClientConfig))
	for name := range c.ClientConfig {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, ok := clientProperties[name]
		if !ok {
			return c, nil, fmt.Errorf("kafka.client_config: %q is not a property flightsink can honour (it takes %s; docs/kafka-properties.md)",
				name, strings.Join(ClientConfigProperties(), ", "))
		}
		if err := p.apply(&out, &opts, c.ClientConfig[name]); err != nil {
			return c, nil, fmt.Errorf("kafka.client_config: %s: %w", name, err)
		}
		if p.setting != "" && typedSettingConflicts(c, out, def) {
			return c, nil, fmt.Errorf("kafka.client_config: %s sets %s, which the configuration also sets: keep one", name, p.setting)
		}
	}
	return out, opts, nil
}

// typedSettingConflicts reports whether the properties changed a typed
// setting that the configuration itself set away from its default.
func typedSettingConflicts(orig, after, def Config) bool {
	pairs := [][3]any{
		{orig.Brokers, after.Brokers, def.Brokers}, {orig.ClientID, after.ClientID, def.ClientID},
		{orig.Linger, after.Linger, def.Linger}, {orig.BatchMaxBytes, after.BatchMaxBytes, def.BatchMaxBytes},
		{orig.Compression, after.Compression, def.Compression}, {orig.ProduceTimeout, after.ProduceTimeout, def.ProduceTimeout},
		{orig.TransactionTimeout, after.TransactionTimeout, def.TransactionTimeout},
		{orig.TLS.Enabled, after.TLS.Enabled, def.TLS.Enabled}, {orig.TLS.CAFile, after.TLS.CAFile, def.TLS.CAFile},
		{orig.TLS.CertFile, after.TLS.CertFile, def.TLS.CertFile}, {orig.TLS.KeyFile, after.TLS.KeyFile, def.TLS.KeyFile},
		{orig.SASL.Mechanism, after.SASL.Mechanism, def.SASL.Mechanism}, {orig.SASL.Username, after.SASL.Username, def.SASL.Username},
		{orig.SASL.Password, after.SASL.Password, def.SASL.Password},
	}
	for _, p := range pairs {
		o, a, d := fmt.Sprint(p[0]), fmt.Sprint(p[1]), fmt.Sprint(p[2])
		if a != o && o != d {
			return true
		}
	}
	return false
}
