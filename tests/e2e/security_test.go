package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// secureBroker starts a private broker with an extra listener (KAFKA_SASL=1
// or KAFKA_TLS=1) and returns what kafka.sh up printed, by key.
func secureBroker(t *testing.T, kind string) map[string]string {
	t.Helper()
	script := os.Getenv("FLIGHTSINK_KAFKA_SCRIPT")
	if script == "" {
		if os.Getenv("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1" {
			t.Fatal("FLIGHTSINK_KAFKA_SCRIPT is not set; make test sets it")
		}
		t.Skip("needs FLIGHTSINK_KAFKA_SCRIPT (scripts/kafka.sh); make test sets it")
	}
	name := strings.ToLower(kind) + "-" + strings.ReplaceAll(t.Name(), "/", "_")
	cmd := exec.Command("bash", script, "up", name)
	cmd.Env = append(os.Environ(), "KAFKA_"+kind+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafka.sh up %s: %v", name, err)
	}
	t.Cleanup(func() { _, _ = exec.Command("bash", script, "down", name).Output() })
	vals := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "KAFKA_") {
			vals[k] = v
		}
	}
	if vals["KAFKA_BROKERS"] == "" || vals["KAFKA_"+kind+"_BROKERS"] == "" {
		t.Fatalf("kafka.sh up printed no %s address:\n%s", kind, out)
	}
	return vals
}

// saslBroker starts a private broker with a SASL_PLAINTEXT listener (user
// flightsink / flightsink-secret, PLAIN and SCRAM) and returns its plain
// and SASL addresses.
func saslBroker(t *testing.T) (plain, sasl string) {
	v := secureBroker(t, "SASL")
	return v["KAFKA_BROKERS"], v["KAFKA_SASL_BROKERS"]
}

// TestKafkaTLS: flightsink reaches the broker's SSL listener, verifying it
// with kafka.tls.ca_file; without the CA the server refuses to start.
func TestKafkaTLS(t *testing.T) {
	t.Parallel() // a broker of its own: see the package doc
	v := secureBroker(t, "TLS")
	plain, tlsAddr, ca := v["KAFKA_BROKERS"], v["KAFKA_TLS_BROKERS"], v["KAFKA_TLS_CA"]
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, []string{plain}, topic, 1, nil)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("kafka:\n  tls:\n    enabled: true\n    ca_file: "+ca+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverConfig{brokers: []string{tlsAddr}, replica: "tls", prefix: uniquePrefix(t), extra: []string{"--config", cfg}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done, err := upload(ctx, srv.addr, topic, "tls-writer", 300, 100, 100, nil)
	if err != nil || done.CommittedRows != 300 {
		t.Fatalf("upload over TLS: %+v, %v", done, err)
	}
	checkExactlyOnce(t, []string{plain}, topic, 300)

	noCA := filepath.Join(t.TempDir(), "config.yaml")
	_ = os.WriteFile(noCA, []byte("kafka:\n  produce_timeout: 3s\n  tls:\n    enabled: true\n"), 0o600)
	cmd := exec.Command(binary(t), "serve", "--config", noCA, "--brokers", tlsAddr, "--listen", freeAddr(t))
	cmd.Env = append(os.Environ(), "FLIGHTSINK_METRICS_LISTEN=") // off: the default port may be taken on a shared machine
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("serve without the CA: %v\n%s\nwant a start-up failure about the certificate", err, out)
	}
	t.Logf("without the CA: %s", lastLine(string(out)))
}

// TestKafkaSASL: flightsink authenticates to the broker's SASL listener
// with SCRAM-SHA-512 and PLAIN, the password coming from the environment;
// a wrong password fails at start-up, naming the problem.
func TestKafkaSASL(t *testing.T) {
	t.Parallel() // a broker of its own: see the package doc
	plain, sasl := saslBroker(t)
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			topic := kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, []string{plain}, topic, 1, nil)
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			body := "kafka:\n  sasl:\n    mechanism: " + mech + "\n    username: flightsink\n    password: {env: TEST_KAFKA_PASSWORD}\n"
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := startServer(t, serverConfig{brokers: []string{sasl}, replica: "sasl", prefix: uniquePrefix(t),
				extra: []string{"--config", cfg}, env: []string{"TEST_KAFKA_PASSWORD=flightsink-secret"}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done, err := upload(ctx, srv.addr, topic, "sasl-"+mech, 300, 100, 100, nil)
			if err != nil || done.CommittedRows != 300 {
				t.Fatalf("upload over SASL: %+v, %v", done, err)
			}
			checkExactlyOnce(t, []string{plain}, topic, 300)
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		body := "kafka:\n  produce_timeout: 5s\n  sasl:\n    mechanism: SCRAM-SHA-256\n    username: flightsink\n    password: {value: wrong}\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary(t), "serve", "--config", cfg, "--brokers", sasl, "--listen", freeAddr(t))
		cmd.Env = append(os.Environ(), "FLIGHTSINK_METRICS_LISTEN=")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "SASL") {
			t.Fatalf("serve with a wrong password: %v\n%s\nwant a start-up failure about SASL", err, out)
		}
		t.Logf("start-up failure: %s", lastLine(string(out)))
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

const (
	e2eLoaderToken = "e2e-loader-token-0123456789abcdef"
	e2eSessionKey  = "e2e-session-key-0123456789abcdef0123456789"
)

// writeConfig writes a config file for a test.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveUntilReady runs `flightsink serve ARGS` until it serves (true) or
// exits (false), and returns what it logged; a serving process is killed.
func serveUntilReady(t *testing.T, env []string, args ...string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	serving := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "flightsink serving") {
			serving = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	_ = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("serve %v neither served nor exited within a minute:\n%s", args, out.String())
	}
	return serving, out.String()
}

// TestAuthStartupRefusals: the binary refuses, before it even connects to
// Kafka, configurations that would expose or confuse credentials: tokens on
// a listener other hosts reach without TLS (unless
// auth.allow_insecure_transport says TLS ends in front), one token under two
// principals, a short session key. Each error names the setting, never the
// secret.
func TestAuthStartupRefusals(t *testing.T) {
	brokers := testBrokers(t)
	tokens := "auth:\n  tokens:\n    - principal: loader\n      token: {env: TEST_LOADER_TOKEN}\n" +
		"  principals:\n    - name: loader\n      topics: ['*']\n    - name: etl\n      topics: ['etl.*']\n"
	env := []string{"TEST_LOADER_TOKEN=" + e2eLoaderToken}
	unreachable := "127.0.0.1:1" // no Kafka: the checks come first
	dupTokens := strings.Replace(tokens, "  principals:", "    - principal: etl\n      token: {env: TEST_LOADER_TOKEN}\n  principals:", 1)
	for name, c := range map[string]struct {
		config, listen string
		want           []string
	}{
		"plaintext tokens on 0.0.0.0": {tokens, "0.0.0.0:" + freePort(t),
			[]string{"flight.listen", "flight.tls_cert_file", "auth.allow_insecure_transport"}},
		"one token under two principals": {dupTokens, "127.0.0.1:" + freePort(t),
			[]string{"auth.tokens[1].token", "auth.tokens[0]", "unique"}},
		"a short session key": {tokens + "  session_keys: [{value: short}]\n", "127.0.0.1:" + freePort(t),
			[]string{"auth.session_keys[0]", "32 characters"}},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			serving, out := serveUntilReady(t, env, "--config", writeConfig(t, c.config), "--listen", c.listen, "--brokers", unreachable)
			if serving {
				t.Fatalf("the server started:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("the start-up error does not name %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, e2eLoaderToken) {
				t.Errorf("the output shows the token:\n%s", out)
			}
			t.Logf("refused in %v: %s", time.Since(start).Round(time.Millisecond), lastLine(out))
		})
	}
	t.Run("allow_insecure_transport", func(t *testing.T) {
		cfg := writeConfig(t, tokens+"  allow_insecure_transport: true\n")
		serving, out := serveUntilReady(t, append(env, "FLIGHTSINK_METRICS_LISTEN=", "FLIGHTSINK_KAFKA_REPLICA=insecure-"+uniquePrefix(t)),
			"--config", cfg, "--listen", "0.0.0.0:"+freePort(t), "--brokers", strings.Join(brokers, ","))
		if !serving || !strings.Contains(out, "auth.allow_insecure_transport") {
			t.Fatalf("with auth.allow_insecure_transport: serving %v, want serving with a warning:\n%s", serving, out)
		}
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := strings.Cut(freeAddr(t), ":")
	return port
}

// bearerToken sends "authorization: Bearer <token>" with every RPC.
type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerToken) RequireTransportSecurity() bool { return false }

// login runs the basic-auth handshake and returns the session token.
func login(t *testing.T, addr, user, pass string) string {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	hs, err := flight.NewFlightServiceClient(conn).Handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = hs.CloseSend()
	for err == nil {
		_, err = hs.Recv()
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("handshake: %v", err)
	}
	v := hs.Trailer().Get("authorization")
	if len(v) == 0 {
		t.Fatal("the handshake answered no token")
	}
	return strings.TrimPrefix(v[0], "Bearer ")
}

// uploadAs writes rows [from, to) as a resumable writer with token.
func uploadAs(ctx context.Context, addr, token, topic, writerID string, to int64) (client.Done, error) {
	c, err := client.Dial(addr, grpc.WithPerRPCCredentials(bearerToken(token)))
	if err != nil {
		return client.Done{}, err
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, KeyField: "key", Delivery: "exactly_once", WriterID: writerID}, rowSchema)
	if err != nil {
		return client.Done{}, err
	}
	from := w.Ready().CommittedRows
	rec := rows(from, to-from)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		return client.Done{}, err
	}
	return w.Close(ctx)
}

// TestSessionTokensAcrossReplicasAndRestarts: a session token from one
// replica's handshake works on another replica and on the first after a
// restart (SIGKILL), because both sign with auth.session_keys from the
// environment; a replica with another key refuses it. Exactly-once holds
// across the three uploads.
func TestSessionTokensAcrossReplicasAndRestarts(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 3, nil)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "auth:\n  users:\n    - username: alice\n      password_bcrypt: {env: TEST_ALICE_BCRYPT}\n"+
		"  principals:\n    - name: alice\n      topics: ['"+topic+"']\n  session_keys:\n    - {env: TEST_SESSION_KEY}\n")
	prefix := uniquePrefix(t)
	replica := func(name, key string) *server {
		return startServer(t, serverConfig{brokers: brokers, replica: name, prefix: prefix, extra: []string{"--config", cfg},
			env: []string{"TEST_ALICE_BCRYPT=" + string(hash), "TEST_SESSION_KEY=" + key}})
	}
	a, b := replica("sa", e2eSessionKey), replica("sb", e2eSessionKey)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	writer := "w-" + topic
	token := login(t, a.addr, "alice", "s3cret password")
	if done, err := uploadAs(ctx, b.addr, token, topic, writer, 100); err != nil || done.CommittedRows != 100 {
		t.Fatalf("the token on another replica: %+v, %v", done, err)
	}
	a.kill()
	a.start()
	if done, err := uploadAs(ctx, a.addr, token, topic, writer, 200); err != nil || done.CommittedRows != 200 {
		t.Fatalf("the token after a restart: %+v, %v", done, err)
	}
	other := replica("sc", strings.ToUpper(e2eSessionKey))
	_, err = uploadAs(ctx, other.addr, token, topic, writer, 300)
	var fe *client.Error
	if !errors.As(err, &fe) || fe.Code != codes.Unauthenticated {
		t.Fatalf("the token on a replica with another key: %v, want Unauthenticated", err)
	}
	checkExactlyOnce(t, brokers, topic, 200)
}
