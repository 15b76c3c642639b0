package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flightsink/flightsink/flightsink"
	"gopkg.in/yaml.v3"
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
		a.Kafka.ProduceTimeout == b.Kafka.ProduceTimeout && a.Kafka.StartupTimeout == b.Kafka.StartupTimeout && a.Kafka.CreateTopics == b.Kafka.CreateTopics &&
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
// variables, and so do the structured settings, as YAML or JSON.
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

	t.Setenv("TEST_LOADER_TOKEN", "a-token-of-sixteen-characters")
	cfg, err = Load("", []string{
		`FLIGHTSINK_AUTH_TOKENS=[{"principal": "loader", "token": {"env": "TEST_LOADER_TOKEN"}}]`,
		"FLIGHTSINK_AUTH_PRINCIPALS=[{name: loader, topics: [orders, 'orders.*'], delivery: [exactly_once], max_streams: 4}]",
		"FLIGHTSINK_AUTH_SESSION_KEYS=- {value: a-session-key-of-at-least-32-characters}",
	})
	if err != nil {
		t.Fatal(err)
	}
	a = cfg.Auth
	if len(a.Tokens) != 1 || a.Tokens[0].Principal != "loader" || a.Tokens[0].Token.Env != "TEST_LOADER_TOKEN" ||
		len(a.Principals) != 1 || a.Principals[0].MaxStreams != 4 || len(a.Principals[0].Topics) != 2 ||
		len(a.SessionKeys) != 1 {
		t.Fatalf("structured settings from the environment: %+v", a)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestStructuredVariablesNeverPanic: a structured setting given a single
// value is an error naming the variable and the shape it expects (it used
// to panic in reflect.Set).
func TestStructuredVariablesNeverPanic(t *testing.T) {
	for _, name := range []string{"FLIGHTSINK_AUTH_TOKENS", "FLIGHTSINK_AUTH_USERS", "FLIGHTSINK_AUTH_PRINCIPALS", "FLIGHTSINK_AUTH_SESSION_KEYS"} {
		_, err := Load("", []string{name + "=abc"})
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "expects a list such as [") {
			t.Errorf("%s=abc: %v, want an error naming the variable and showing a list", name, err)
		}
	}
}

// TestEveryVariableReachesItsSetting: each setting config.yaml lists has a
// variable that sets it, nested ones (kafka.tls.enabled) included.
func TestEveryVariableReachesItsSetting(t *testing.T) {
	settings := Settings()
	if len(settings) < 50 {
		t.Fatalf("only %d settings found", len(settings))
	}
	seen := map[string]string{}
	for _, s := range settings {
		if other, dup := seen[s.Env]; dup {
			t.Errorf("%s and %s share the variable %s", s.Path, other, s.Env)
		}
		seen[s.Env] = s.Path
		if ignoredVariable(s.Env) {
			t.Errorf("%s's variable %s looks like a Kubernetes service variable or a tooling one: it would be ignored", s.Path, s.Env)
		}
		val := sampleValue(t, s)
		cfg, err := Load("", []string{s.Env + "=" + val})
		if err != nil {
			t.Errorf("%s=%s: %v", s.Env, val, err)
			continue
		}
		got := reflect.ValueOf(cfg).FieldByIndex(s.index)
		def := reflect.ValueOf(Default()).FieldByIndex(s.index)
		if reflect.DeepEqual(got.Interface(), def.Interface()) {
			t.Errorf("%s=%s left %s at its default %v", s.Env, val, s.Path, def.Interface())
		}
	}
	for _, path := range []string{"kafka.tls.enabled", "kafka.sasl.password", "kafka.schema_registry.url", "auth.tokens", "log.level"} {
		if _, ok := seen[EnvName(path)]; !ok {
			t.Errorf("%s is not among the settings", path)
		}
	}
}

// sampleValue is a variable value that differs from s's default.
func sampleValue(t *testing.T, s Setting) string {
	if s.Secret {
		return "s3cret"
	}
	if e, ok := examples[s.Path]; ok {
		return e
	}
	switch {
	case s.typ == durationType:
		return "7s"
	case s.typ.Kind() == reflect.String:
		return "sample"
	case s.typ.Kind() == reflect.Bool:
		def := reflect.ValueOf(Default()).FieldByIndex(s.index).Bool()
		return strconv.FormatBool(!def)
	case s.typ.Kind() >= reflect.Int && s.typ.Kind() <= reflect.Int64:
		return "7"
	case s.typ.Kind() == reflect.Slice && s.typ.Elem().Kind() == reflect.String:
		return "at_least_once,b"
	case s.typ.Kind() == reflect.Float32 || s.typ.Kind() == reflect.Float64:
		return "0.5"
	case s.typ.Kind() == reflect.Map:
		return `{"a": "b"}`
	}
	t.Fatalf("%s: no sample value for its type %v", s.Path, s.typ)
	return ""
}

// TestNestedAndSecretVariables: nested settings and secrets (as the value
// or, with _FILE, a file) come from the environment.
func TestNestedAndSecretVariables(t *testing.T) {
	cfg, err := Load("", []string{"FLIGHTSINK_KAFKA_TLS_ENABLED=true", "FLIGHTSINK_KAFKA_TLS_SERVER_NAME=kafka.internal",
		"FLIGHTSINK_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "FLIGHTSINK_KAFKA_SASL_USERNAME=fs",
		"FLIGHTSINK_KAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka", "FLIGHTSINK_KAFKA_SCHEMA_REGISTRY_PASSWORD=pw"})
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Kafka
	if !k.TLS.Enabled || k.TLS.ServerName != "kafka.internal" || k.SASL.Mechanism != "SCRAM-SHA-512" ||
		k.SASL.Password.File != "/run/secrets/kafka" || k.SASL.Password.Value != "" || k.SchemaRegistry.Password.Value != "pw" {
		t.Fatalf("nested variables not applied: %+v", k)
	}
	// A variable replaces the file's secret whole (it never holds two sources).
	p := writeFile(t, "kafka:\n  sasl:\n    password: {env: FROM_FILE}\n")
	cfg, err = Load(p, []string{"FLIGHTSINK_KAFKA_SASL_PASSWORD=pw"})
	if err != nil {
		t.Fatal(err)
	}
	if pw := cfg.Kafka.SASL.Password; pw.Value != "pw" || pw.Env != "" {
		t.Errorf("password %+v, want the variable's value only", pw)
	}
	if _, err := Load("", []string{"FLIGHTSINK_KAFKA_SASL_PASSWORD=a", "FLIGHTSINK_KAFKA_SASL_PASSWORD_FILE=/f"}); err == nil ||
		!strings.Contains(err.Error(), "set one of them") {
		t.Errorf("both the value and the file: %v", err)
	}
}

// TestUnknownVariablesAreRefused: a misspelt FLIGHTSINK_* variable is an
// error naming the nearest setting, as a misspelt key in the file is;
// a section's name lists its settings.
func TestUnknownVariablesAreRefused(t *testing.T) {
	for env, want := range map[string]string{
		"FLIGHTSINK_KAFKA_BROKER=a:1":                 "did you mean FLIGHTSINK_KAFKA_BROKERS (kafka.brokers)",
		"FLIGHTSINK_FLIGHT_LISTN=0.0.0.0:1":           "did you mean FLIGHTSINK_FLIGHT_LISTEN (flight.listen)",
		"FLIGHTSINK_KAFKA_TLS=true":                   "FLIGHTSINK_KAFKA_TLS_ENABLED",
		"FLIGHTSINK_AUTH_TOKEN=x":                     "did you mean FLIGHTSINK_AUTH_TOKENS (auth.tokens)",
		"FLIGHTSINK_KAFKA_MAX_EXACTLY_ONCE_STREAMS=4": "not a setting",
	} {
		name, _, _ := strings.Cut(env, "=")
		_, err := Load("", []string{env})
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming it and %q", env, err, want)
		}
	}
	if _, err := Load(writeFile(t, "kafka:\n  brokerz: [a:1]\n"), nil); err == nil || !strings.Contains(err.Error(), "kafka.brokerz is not a setting; did you mean kafka.brokers?") {
		t.Errorf("unknown key in the file: %v", err)
	}
}

// TestVariablesThatAreNotSettings: what Kubernetes injects for a Service
// named flightsink, the names a config's {env: NAME} secrets read, and the
// project's test variables never stop a server.
func TestVariablesThatAreNotSettings(t *testing.T) {
	environ := []string{
		"FLIGHTSINK_SERVICE_HOST=10.0.0.1", "FLIGHTSINK_SERVICE_PORT=8815", "FLIGHTSINK_SERVICE_PORT_FLIGHT=8815",
		"FLIGHTSINK_PORT=tcp://10.0.0.1:8815", "FLIGHTSINK_PORT_8815_TCP=tcp://10.0.0.1:8815",
		"FLIGHTSINK_PORT_8815_TCP_PROTO=tcp", "FLIGHTSINK_PORT_8815_TCP_PORT=8815", "FLIGHTSINK_PORT_8815_TCP_ADDR=10.0.0.1",
		"FLIGHTSINK_HEADLESS_SERVICE_HOST=10.0.0.2", "FLIGHTSINK_HEADLESS_PORT_9464_TCP_ADDR=10.0.0.2",
		"FLIGHTSINK_TEST_BROKERS=127.0.0.1:9092", "FLIGHTSINK_CACHE_DIR=/tmp/c", "FLIGHTSINK_KAFKA_SCRIPT=/x/kafka.sh",
		"FLIGHTSINK_AUTH_TOKEN_LOADER=a-token-of-sixteen-characters",
	}
	p := writeFile(t, "auth:\n  tokens:\n    - {principal: loader, token: {env: FLIGHTSINK_AUTH_TOKEN_LOADER}}\n")
	if _, err := Load(p, environ); err != nil {
		t.Fatal(err)
	}
	// Without the reference, the token variable is a mistake.
	if _, err := Load("", environ); err == nil || !strings.Contains(err.Error(), "FLIGHTSINK_AUTH_TOKEN_LOADER") {
		t.Errorf("an unreferenced FLIGHTSINK_AUTH_TOKEN_LOADER: %v", err)
	}
}

// TestErrorsSpeakTheUsersLanguage: a wrong value says what would be
// accepted, in the config's words, never a Go type.
func TestErrorsSpeakTheUsersLanguage(t *testing.T) {
	for _, c := range []struct {
		file, env, want string
	}{
		{file: "flight:\n  shutdown_grace: 30\n", want: "flight.shutdown_grace: 30 has no unit: use a duration such as 30s"},
		{env: "FLIGHTSINK_FLIGHT_SHUTDOWN_GRACE=30", want: "flight.shutdown_grace: 30 has no unit: use a duration such as 30s"},
		{env: "FLIGHTSINK_KAFKA_LINGER=soon", want: `kafka.linger: "soon" is not a duration`},
		{file: "flight:\n  max_streams: lots\n", want: `flight.max_streams: "lots" is not a whole number`},
		{env: "FLIGHTSINK_KAFKA_CREATE_TOPICS=maybe", want: `kafka.create_topics: "maybe" is not true or false`},
		{file: "kafka:\n  tls: true\n", want: "kafka.tls: expects a section of settings"},
		{file: "kafka:\n  sasl:\n    password: hunter2\n", want: "kafka.sasl.password: expects {env: NAME}, {file: PATH} or {value: TEXT}"},
		{file: "auth:\n  tokens:\n    - {principal: a, tokn: {env: X}}\n", want: "auth.tokens[0].tokn is not a setting; did you mean auth.tokens[0].token?"},
		{file: "flight:\n  receive_window_bytes: 99999999999\n", want: "flight.receive_window_bytes: 99999999999 is out of range"},
	} {
		var environ []string
		path := ""
		if c.env != "" {
			environ = []string{c.env}
		}
		if c.file != "" {
			path = writeFile(t, c.file)
		}
		_, err := Load(path, environ)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s%s: %v, want %q", c.file, c.env, err, c.want)
			continue
		}
		if goType := regexp.MustCompile(`time\.Duration|int64|int32|\bstring\b|struct|\[\][a-z]|[a-z]+\.[A-Z][A-Za-z]+`); goType.MatchString(err.Error()) {
			t.Errorf("%q names a Go type", err)
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

// TestProjectVariablesAreKnown: every FLIGHTSINK_* name the project's
// scripts, harnesses and deployment files use is a setting or a variable the
// server ignores, so a developer's shell (which exports the test variables)
// or a container runs the server.
func TestProjectVariablesAreKnown(t *testing.T) {
	known := map[string]bool{}
	for _, s := range Settings() {
		known[s.Env] = true
		if s.Secret {
			known[s.Env+"_FILE"] = true
		}
	}
	name := regexp.MustCompile(`FLIGHTSINK_[A-Z0-9_]*[A-Z0-9]`)
	checked := 0
	for _, root := range []string{"scripts", "bench", ".ci", "tests", "examples", "Makefile", "Dockerfile", "docker-compose.yml"} {
		err := filepath.WalkDir(filepath.Join("..", "..", "..", root), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				if d.Name() == "__pycache__" || d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, n := range name.FindAllString(string(b), -1) {
				checked++
				if !known[n] && !ignoredVariable(n) {
					t.Errorf("%s uses %s, which is no setting: a server started with it would refuse to start "+
						"(add it to toolingVariables if it is the tests' own)", path, n)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 50 {
		t.Fatalf("only %d FLIGHTSINK_* names found: is the walk looking in the right place?", checked)
	}
}

// TestEmptyAndCommentOnlyFiles: a file with nothing set is the defaults.
func TestEmptyAndCommentOnlyFiles(t *testing.T) {
	for _, body := range []string{"", "# nothing\n", "---\n"} {
		cfg, err := Load(writeFile(t, body), nil)
		if err != nil || !equal(cfg, Default()) {
			t.Errorf("%q: %v, %+v", body, err, cfg)
		}
	}
	if _, err := Load(writeFile(t, "just text\n"), nil); err == nil || !strings.Contains(err.Error(), "the top level: expects a section") {
		t.Errorf("a file that is one value: %v", err)
	}
}

// TestDecodeNumbersAndMaps: kinds the Config does not use today (floats,
// maps of text) decode too, so a new setting of such a type is reachable
// from the file and the environment without a new decoder.
func TestDecodeNumbersAndMaps(t *testing.T) {
	var v struct {
		Ratio float64           `yaml:"ratio"`
		Extra map[string]string `yaml:"extra"`
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("ratio: 0.25\nextra: {a: b, c: 1}\n"), &n); err != nil {
		t.Fatal(err)
	}
	if err := decodeNode(reflect.ValueOf(&v).Elem(), &n, ""); err != nil {
		t.Fatal(err)
	}
	if v.Ratio != 0.25 || v.Extra["a"] != "b" || v.Extra["c"] != "1" {
		t.Errorf("decoded %+v", v)
	}
	if err := yaml.Unmarshal([]byte("ratio: half\n"), &n); err != nil {
		t.Fatal(err)
	}
	if err := decodeNode(reflect.ValueOf(&v).Elem(), &n, ""); err == nil || !strings.Contains(err.Error(), `ratio: "half" is not a number`) {
		t.Errorf("ratio: half: %v", err)
	}
}
