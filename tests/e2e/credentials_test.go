package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// Kafka credentials that rotate (issue 20): a real Kafka 4.x broker with an
// OAUTHBEARER listener that forces re-authentication, as managed services
// do, and the server's credentials renewed while streams run.

// kafkaJVMOpts are scripts/kafka.sh's default JVM options, which
// KAFKA_JVM_OPTS replaces: a test that adds a system property repeats them.
const kafkaJVMOpts = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError " +
	"-Djava.awt.headless=true -Djava.net.preferIPv4Stack=true"

// reauthMs is the brokers' connections.max.reauth.ms: every SASL session
// ends after 15 s (or when its token expires, if sooner) and must
// re-authenticate, as on Confluent Cloud or MSK.
const reauthMs = 15000

// credsBroker starts a private broker whose SASL_PLAINTEXT listener (user
// flightsink / flightsink-secret for PLAIN and SCRAM) also takes
// OAUTHBEARER as props configure it; it returns the plain and SASL
// addresses.
func credsBroker(t *testing.T, name string, props []string, jvmOpts string) (plain, saslAddr string) {
	t.Helper()
	script := os.Getenv("FLIGHTSINK_KAFKA_SCRIPT")
	if script == "" {
		if os.Getenv("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1" {
			t.Fatal("FLIGHTSINK_KAFKA_SCRIPT is not set; make test sets it")
		}
		t.Skip("needs FLIGHTSINK_KAFKA_SCRIPT (scripts/kafka.sh); make test sets it")
	}
	props = append([]string{
		"sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
		fmt.Sprintf("connections.max.reauth.ms=%d", reauthMs),
	}, props...)
	cmd := exec.Command("bash", script, "up", name)
	cmd.Env = append(os.Environ(), "KAFKA_SASL=1", "KAFKA_EXTRA_PROPS="+strings.Join(props, "\n"),
		fmt.Sprintf("KAFKA_OWNER_PID=%d", os.Getpid()))
	if jvmOpts != "" {
		cmd.Env = append(cmd.Env, "KAFKA_JVM_OPTS="+jvmOpts)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafka.sh up %s: %v\n%s", name, err, stderr.String())
	}
	t.Cleanup(func() { _, _ = exec.Command("bash", script, "down", name).Output() })
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "KAFKA_BROKERS":
			plain = v
		case "KAFKA_SASL_BROKERS":
			saslAddr = v
		}
	}
	if plain == "" || saslAddr == "" {
		t.Fatalf("kafka.sh up printed no addresses:\n%s", out)
	}
	return plain, saslAddr
}

// unsecuredToken is an unsigned JWT, as Kafka's default (unsecured)
// OAUTHBEARER validator takes them.
func unsecuredToken(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, sub, time.Now().Unix(), exp.Unix())) + "."
}

// replaceFile writes v to path as a sidecar or Kubernetes does: a new file
// renamed over the old one.
func replaceFile(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// streamer writes rows to its own topic as a resilient exactly-once loader
// does, until stopped: batches of 50 rows every 50 ms, a checkpoint every
// 500 rows; when the stream fails with a retryable error it reconnects with
// the same writer_id and resumes from ready (1 s backoff).
type streamer struct {
	addr, topic, writerID string
	stop                  chan struct{}
	done                  chan struct{}

	mu     sync.Mutex
	errs   []streamErr // failures, in order
	rows   int64       // committed at the end
	fatal  error       // a non-retryable failure
	opened int
}

type streamErr struct {
	at     time.Time
	reason string
	msg    string
}

func startStreamer(addr, topic, writerID string) *streamer {
	s := &streamer{addr: addr, topic: topic, writerID: writerID, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *streamer) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func (s *streamer) run() {
	defer close(s.done)
	for {
		done, err := s.once()
		if err == nil {
			s.mu.Lock()
			s.rows = done.CommittedRows
			s.mu.Unlock()
			return
		}
		var ce *client.Error
		s.mu.Lock()
		if !errors.As(err, &ce) || !ce.Retryable() {
			s.fatal = err
			s.mu.Unlock()
			return
		}
		s.errs = append(s.errs, streamErr{at: time.Now(), reason: ce.Reason, msg: ce.Message})
		s.mu.Unlock()
		time.Sleep(time.Second)
	}
}

// once is one stream: resume, write until stopped, close (commit the tail).
func (s *streamer) once() (client.Done, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := client.Dial(s.addr)
	if err != nil {
		return client.Done{}, err
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: s.topic, KeyField: "key", Delivery: "exactly_once", WriterID: s.writerID}, rowSchema)
	if err != nil {
		return client.Done{}, err
	}
	s.mu.Lock()
	s.opened++
	s.mu.Unlock()
	pos := w.Ready().CommittedRows
	for !s.stopped() {
		rec := rows(pos, 50)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			_, cerr := w.Close(ctx) // the stream's own error
			return client.Done{}, errors.Join(cerr, err)
		}
		pos += 50
		if pos%500 == 0 {
			if _, err := w.Checkpoint(ctx); err != nil {
				return client.Done{}, err
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return w.Close(ctx)
}

// finish stops the streamer and waits for its last stream to commit.
func (s *streamer) finish(t *testing.T) int64 {
	t.Helper()
	close(s.stop)
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("writer %s did not finish", s.writerID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fatal != nil {
		t.Fatalf("writer %s failed for good: %v", s.writerID, s.fatal)
	}
	return s.rows
}

// failures are the stream failures so far.
func (s *streamer) failures() []streamErr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]streamErr(nil), s.errs...)
}

// readCommittedAs reads the topic read_committed to its end as an
// independent client authenticating with mech on the SASL listener.
func readCommittedAs(t *testing.T, addr string, mech sasl.Mechanism, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.SASL(mech)}
	adm := kadm.NewClient(kafkatest.Client(t, []string{addr}, opts...))
	var ends kadm.ListedOffsets
	for { // transaction markers settle right after a commit
		hwm, err := adm.ListEndOffsets(ctx, topic)
		lso, lerr := adm.ListCommittedOffsets(ctx, topic)
		if err = errors.Join(err, lerr, hwm.Error(), lso.Error()); err != nil {
			t.Fatalf("end offsets of %s as the OAUTHBEARER reader: %v", topic, err)
		}
		settled := true
		hwm.Each(func(o kadm.ListedOffset) {
			l, _ := lso.Lookup(o.Topic, o.Partition)
			settled = settled && l.Offset == o.Offset
		})
		if settled {
			ends = hwm
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("transactions of %s never settled", topic)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl := kafkatest.Client(t, []string{addr}, append(opts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords(), kgo.FetchMaxWait(200*time.Millisecond))...)
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: partitions %v not read to their end", topic, want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetching %s[%d]: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// exactlyOnce checks that recs hold every id in [0, total) once.
func exactlyOnce(t *testing.T, recs []*kgo.Record, total int64) {
	t.Helper()
	seen := make([]int, total)
	for _, r := range recs {
		var v struct{ ID int64 }
		if err := json.Unmarshal(r.Value, &v); err != nil || v.ID < 0 || v.ID >= total {
			t.Fatalf("record %q: id outside [0, %d) (%v)", r.Value, total, err)
		}
		seen[v.ID]++
	}
	bad := 0
	for id, n := range seen {
		if n != 1 {
			if bad++; bad <= 5 {
				t.Errorf("id %d written %d times", id, n)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d ids not exactly once (%d records)", bad, total, len(recs))
	}
}

// streamOpenError opens one new stream and returns its failure.
func streamOpenError(addr, topic string) *client.Error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(addr)
	if err != nil {
		return &client.Error{Message: err.Error()}
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, KeyField: "key", Delivery: "exactly_once", WriterID: "probe"}, rowSchema)
	if err == nil {
		_ = w.Abort(ctx, "probe")
		return nil
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce
	}
	return &client.Error{Message: err.Error()}
}

// TestKafkaCredentialRotation: on a broker whose SASL listener takes
// unsecured OAUTHBEARER JWTs and SCRAM, and forces re-authentication every
// 15 s, the server's credentials are renewed while it runs.
func TestKafkaCredentialRotation(t *testing.T) {
	t.Parallel() // a broker of its own: see the package doc
	plain, saslAddr := credsBroker(t, "creds-rotation", []string{
		`listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";`,
	}, "")
	t.Run("expired token at start-up", func(t *testing.T) { testOAuthExpiredAtStartup(t, saslAddr) })
	t.Run("OAUTHBEARER token file", func(t *testing.T) { testOAuthTokenRotation(t, plain, saslAddr) })
	t.Run("SCRAM password", func(t *testing.T) { testSCRAMPasswordRotation(t, plain, saslAddr) })
}

// testOAuthTokenRotation: the server signs in with OAUTHBEARER from a
// token file that a sidecar replaces while two exactly-once streams run,
// on a broker that forces re-authentication every 15 s:
//   - replaced before the old token expires: the streams never notice;
//   - left to expire: re-authentication is refused, /readyz turns 503 with
//     "Kafka refused authentication (SASL OAUTHBEARER): invalid_token ...
//     expired at", /healthz stays 200, new streams fail with Unavailable
//     kafka_auth_failed, the running ones fail retryably and resume;
//   - replaced after it expired: the server recovers without a restart.
//
// Every row of both streams is in Kafka exactly once, read back by an
// independent OAUTHBEARER client. Before, kafka.sasl.token was read once
// at start-up and the server never recovered.
func testOAuthTokenRotation(t *testing.T, plain, saslAddr string) {
	topics := []string{kafkatest.TopicName(t) + "-a", kafkatest.TopicName(t) + "-b"}
	for _, topic := range topics {
		kafkatest.CreateTopic(t, []string{plain}, topic, 3, nil)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	// Long enough for the server to start; replaced as soon as it serves.
	replaceFile(t, tokenFile, unsecuredToken("flightsink", time.Now().Add(40*time.Second)))
	cfg := writeConfig(t, "kafka:\n  sasl:\n    mechanism: OAUTHBEARER\n    token: {file: "+tokenFile+"}\n")
	maddr := freeAddr(t)
	srv := startServer(t, serverConfig{brokers: []string{saslAddr}, replica: "oauth", prefix: uniquePrefix(t),
		extra: []string{"--config", cfg},
		env: []string{"FLIGHTSINK_METRICS_LISTEN=" + maddr, "FLIGHTSINK_METRICS_CHECK_INTERVAL=500ms",
			"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=5s"}})
	ready := time.Now()
	t1Exp, t2Exp := ready.Add(20*time.Second), ready.Add(50*time.Second)
	replaceFile(t, tokenFile, unsecuredToken("flightsink", t1Exp))

	var streams []*streamer
	for i, topic := range topics {
		streams = append(streams, startStreamer(srv.addr, topic, fmt.Sprintf("rotation-%d", i)))
	}
	defer func() {
		for _, s := range streams {
			select {
			case <-s.stop:
			default:
				close(s.stop)
			}
		}
	}()

	// 1. Replaced 10 s before the old token expires, as a renewer does.
	time.Sleep(time.Until(ready.Add(10 * time.Second)))
	replaceFile(t, tokenFile, unsecuredToken("flightsink", t2Exp))
	t.Logf("token 2 in place at +%v, token 1 expires at +20s", time.Since(ready).Round(time.Second))
	// Token 1 expired 25 s ago: every session re-authenticated since. (A
	// session ends with its token: in the last second of token 2, before
	// anyone could replace it, requests are refused, so stop short.)
	phase2 := t2Exp.Add(-5 * time.Second)
	time.Sleep(time.Until(phase2))
	for _, s := range streams {
		if f := s.failures(); len(f) > 0 {
			t.Fatalf("writer %s failed while a valid token was in place: %+v\nserver log:\n%s", s.writerID, f, srv.log())
		}
	}
	t.Logf("phase 1: no stream failed across the rotation before expiry")

	// 2. Token 2 expires and nobody replaces it.
	var body string
	waitUntil(t, "/readyz to report the refused token", func() bool {
		var code int
		code, body = httpGet("http://" + maddr + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "Kafka refused authentication (SASL OAUTHBEARER): invalid_token")
	})
	if !strings.Contains(body, "(kafka.sasl.token, sub \"flightsink\") expired at") {
		t.Fatalf("/readyz: %s\nwant it to say which token expired", body)
	}
	if code, _ := httpGet("http://" + maddr + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz answered %d: the process is alive and recovers once the token is renewed", code)
	}
	ce := streamOpenError(srv.addr, topics[0])
	if ce == nil || ce.Reason != "kafka_auth_failed" || ce.Code.String() != "Unavailable" || !ce.Retryable() ||
		!strings.HasPrefix(ce.Message, "Kafka refused authentication (SASL OAUTHBEARER): invalid_token (SASL_AUTHENTICATION_FAILED); the token from file "+tokenFile) {
		t.Fatalf("a new stream with the token expired: %+v\nwant Unavailable kafka_auth_failed naming the token", ce)
	}
	if !strings.Contains(srv.log(), "the OAUTHBEARER token of kafka.sasl.token expired") {
		t.Fatalf("no warning about the expired token in the server log:\n%s", srv.log())
	}
	t.Logf("phase 2: /readyz: %s", strings.TrimSpace(body))
	t.Logf("phase 2: new stream: %v %s: %s", ce.Code, ce.Reason, ce.Message)

	// 3. Replaced after it expired: the server recovers by itself.
	replaceFile(t, tokenFile, unsecuredToken("flightsink", time.Now().Add(10*time.Minute)))
	renewed := time.Now()
	waitUntil(t, "/readyz to recover", func() bool { code, _ := httpGet("http://" + maddr + "/readyz"); return code == http.StatusOK })
	t.Logf("phase 3: ready again %v after the token was replaced", time.Since(renewed).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // the streams resume and write on

	reader := oauth.Auth{Token: unsecuredToken("reader", time.Now().Add(10*time.Minute))}.AsMechanism()
	for i, s := range streams {
		total := s.finish(t)
		for _, f := range s.failures() {
			if f.at.Before(phase2) || f.reason != "kafka_auth_failed" && f.reason != "outcome_unknown" && f.reason != "kafka_unavailable" {
				t.Errorf("writer %s: unexpected failure %+v", s.writerID, f)
			}
			t.Logf("writer %s failed at +%v (token 2 expired at +50s): %s: %s", s.writerID,
				f.at.Sub(ready).Round(time.Second), f.reason, f.msg)
		}
		recs := readCommittedAs(t, saslAddr, reader, topics[i])
		exactlyOnce(t, recs, total)
		t.Logf("writer %s: %d rows in %d streams, every row once (read with OAUTHBEARER)", s.writerID, total, s.opened)
	}
	if n := strings.Count(srv.log(), "OAUTHBEARER token read"); n != 4 {
		t.Errorf("the server log shows %d tokens read; want the 4 the file held", n)
	}
}

// testSCRAMPasswordRotation: the broker's SCRAM password of the
// server's user is changed (kafka-configs' AlterUserScramCredentials); new
// connections are refused with Unavailable kafka_auth_failed naming the
// user and the password file, until the file is replaced; then new streams
// work, without a restart.
func testSCRAMPasswordRotation(t *testing.T, plain, saslAddr string) {
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, []string{plain}, topic, 3, nil)
	setPassword := func(pw string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := kadm.NewClient(kafkatest.Client(t, []string{plain})).AlterUserSCRAMs(ctx, nil,
			[]kadm.UpsertSCRAM{{User: "rotor", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pw}})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	setPassword("rotor-1")
	pwFile := filepath.Join(t.TempDir(), "password")
	replaceFile(t, pwFile, "rotor-1")
	cfg := writeConfig(t, "kafka:\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: rotor\n    password: {file: "+pwFile+"}\n")
	maddr := freeAddr(t)
	srv := startServer(t, serverConfig{brokers: []string{saslAddr}, replica: "scram", prefix: uniquePrefix(t),
		extra: []string{"--config", cfg},
		env:   []string{"FLIGHTSINK_METRICS_LISTEN=" + maddr, "FLIGHTSINK_METRICS_CHECK_INTERVAL=500ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if done, err := upload(ctx, srv.addr, topic, "scram", 1000, 100, 500, nil); err != nil || done.CommittedRows != 1000 {
		t.Fatalf("first upload: %+v, %v", done, err)
	}

	setPassword("rotor-2") // the file still says rotor-1
	ce := streamOpenError(srv.addr, topic)
	want := `Kafka refused authentication (SASL SCRAM-SHA-512): Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (SASL_AUTHENTICATION_FAILED); user "rotor", password from file ` + pwFile
	if ce == nil || ce.Reason != "kafka_auth_failed" || ce.Code.String() != "Unavailable" || !strings.HasPrefix(ce.Message, want) {
		t.Fatalf("a new stream after the password changed: %+v\nwant Unavailable kafka_auth_failed starting %q", ce, want)
	}
	t.Logf("stale password: %v %s: %s", ce.Code, ce.Reason, ce.Message)

	replaceFile(t, pwFile, "rotor-2")
	if done, err := upload(ctx, srv.addr, topic, "scram", 2000, 100, 500, nil); err != nil || done.CommittedRows != 2000 {
		t.Fatalf("after the password file was replaced: %+v, %v", done, err)
	}
	waitUntil(t, "/readyz with the new password", func() bool { code, _ := httpGet("http://" + maddr + "/readyz"); return code == http.StatusOK })
	exactlyOnce(t, readCommittedAs(t, saslAddr, scram.Auth{User: "rotor", Pass: "rotor-2"}.AsSha512Mechanism(), topic), 2000)
}

// testOAuthExpiredAtStartup: a server whose token expired refuses to
// start, saying so, not "no broker answered".
func testOAuthExpiredAtStartup(t *testing.T, saslAddr string) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	replaceFile(t, tokenFile, unsecuredToken("stale", time.Now().Add(-time.Minute)))
	cfg := writeConfig(t, "kafka:\n  produce_timeout: 5s\n  sasl:\n    mechanism: OAUTHBEARER\n    token: {file: "+tokenFile+"}\n")
	serving, out := serveUntilReady(t, []string{"FLIGHTSINK_METRICS_LISTEN=", "FLIGHTSINK_KAFKA_REPLICA=expired-" + uniquePrefix(t)},
		"--config", cfg, "--listen", freeAddr(t), "--brokers", saslAddr)
	want := `Kafka refused authentication (SASL OAUTHBEARER): invalid_token (SASL_AUTHENTICATION_FAILED); the token from file ` +
		tokenFile + ` (kafka.sasl.token, sub "stale") expired at `
	if serving || !strings.Contains(out, want) || !strings.Contains(out, "the OAUTHBEARER token of kafka.sasl.token expired") {
		t.Fatalf("serve with an expired token: serving %v\n%s\nwant a start-up failure containing %q and the warning before it", serving, out, want)
	}
	t.Logf("start-up failure: %s", lastLine(out))
}

// testIdP is an OAuth 2 / OIDC provider for the test: a client-credentials
// token endpoint issuing RS256 JWTs for registered clients and the JWKS the
// broker validates them with.
type testIdP struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	clients  map[string]string        // client_id → secret
	lifetime map[string]time.Duration // client_id → token lifetime

	mu     sync.Mutex
	issued map[string][]time.Time // client_id → when each token was issued
	jwks   int                    // JWKS fetches (by the broker)
}

func newTestIdP(t *testing.T) *testIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testIdP{key: key, clients: map[string]string{}, lifetime: map[string]time.Duration{}, issued: map[string][]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		p.jwks++
		p.mu.Unlock()
		enc := base64.RawURLEncoding.EncodeToString
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "test-key",
			"n": enc(key.N.Bytes()), "e": enc(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("grant_type") != "client_credentials" || p.clients[id] == "" || p.clients[id] != secret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"unknown client or wrong secret"}`))
			return
		}
		life := p.lifetime[id]
		tok, err := p.sign(id, r.PostFormValue("scope"), life, p.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		p.mu.Lock()
		p.issued[id] = append(p.issued[id], time.Now())
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(life.Seconds())})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// sign makes a token for sub as this IdP issues them, signed with key.
func (p *testIdP) sign(sub, scope string, life time.Duration, key *rsa.PrivateKey) (string, error) {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": p.srv.URL, "aud": "kafka", "sub": sub, "scope": scope,
		"iat": now.Unix(), "exp": now.Add(life).Unix(), "jti": rand.Text(),
	})
	tok.Header["kid"] = "test-key"
	return tok.SignedString(key)
}

func (p *testIdP) issuedTo(id string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.issued[id]...)
}

// TestKafkaOIDCClientCredentials: the broker validates RS256 JWTs against
// the test IdP's JWKS (OAuthBearerValidatorCallbackHandler, expected issuer
// and audience); the server fetches its tokens from the IdP's token
// endpoint with the client-credentials grant. Tokens live 15 s, so a stream
// of about a minute spans several refreshes (each before the token in use
// expires) and forced re-authentications; it never fails, and every row is
// in Kafka once, read back by a client with its own IdP token. A token the
// IdP did not sign is refused by the broker; a wrong client secret stops
// the server at start-up naming the endpoint and the OAuth error.
func TestKafkaOIDCClientCredentials(t *testing.T) {
	t.Parallel() // a broker of its own: see the package doc
	idp := newTestIdP(t)
	idp.clients["flightsink"], idp.lifetime["flightsink"] = "flightsink-client-secret", 15*time.Second
	idp.clients["reader"], idp.lifetime["reader"] = "reader-client-secret", 10*time.Minute
	jwksURL := idp.srv.URL + "/jwks"
	plain, saslAddr := credsBroker(t, "creds-oidc", []string{
		"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
		"listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
		"sasl.oauthbearer.jwks.endpoint.url=" + jwksURL,
		"sasl.oauthbearer.expected.issuer=" + idp.srv.URL,
		"sasl.oauthbearer.expected.audience=kafka",
	}, kafkaJVMOpts+" -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="+jwksURL)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, []string{plain}, topic, 3, nil)

	t.Run("forged token refused", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		forged, _ := idp.sign("flightsink", "kafka", time.Hour, other)
		cl := kafkatest.Client(t, []string{saslAddr}, kgo.SASL(oauth.Auth{Token: forged}.AsMechanism()))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
		if err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
			t.Fatalf("a token signed by another key: %v; want the broker to refuse it", err)
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		cfg := writeConfig(t, "kafka:\n  sasl:\n    mechanism: OAUTHBEARER\n    token_endpoint_url: "+idp.srv.URL+"/token\n"+
			"    client_id: flightsink\n    client_secret: {value: wrong}\n")
		serving, out := serveUntilReady(t, []string{"FLIGHTSINK_METRICS_LISTEN=", "FLIGHTSINK_KAFKA_REPLICA=oidc-bad-" + uniquePrefix(t)},
			"--config", cfg, "--listen", freeAddr(t), "--brokers", saslAddr)
		want := "Kafka credentials unavailable (SASL OAUTHBEARER): fetching a token from " + idp.srv.URL + "/token"
		if serving || !strings.Contains(out, want) || !strings.Contains(out, `invalid_client`) {
			t.Fatalf("serve with a wrong client secret: serving %v\n%s\nwant a start-up failure containing %q", serving, out, want)
		}
	})

	secretFile := filepath.Join(t.TempDir(), "client-secret")
	replaceFile(t, secretFile, "flightsink-client-secret")
	cfg := writeConfig(t, "kafka:\n  sasl:\n    mechanism: OAUTHBEARER\n    token_endpoint_url: "+idp.srv.URL+"/token\n"+
		"    client_id: flightsink\n    client_secret: {file: "+secretFile+"}\n    scope: kafka\n")
	srv := startServer(t, serverConfig{brokers: []string{saslAddr}, replica: "oidc", prefix: uniquePrefix(t),
		extra: []string{"--config", cfg}, env: []string{"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=10s"}})
	atStart := len(idp.issuedTo("flightsink"))
	s := startStreamer(srv.addr, topic, "oidc")
	started := time.Now()
	waitUntilFor(t, 4*time.Minute, "4 token refreshes during the stream", func() bool {
		return len(idp.issuedTo("flightsink")) >= atStart+4
	})
	total := s.finish(t)
	if f := s.failures(); len(f) > 0 {
		t.Fatalf("the stream failed across token refreshes: %+v\nserver log:\n%s", f, srv.log())
	}
	issued := idp.issuedTo("flightsink")
	for i := 1; i < len(issued); i++ {
		t.Logf("token %d issued %v after token %d (lifetime 15s)", i+1, issued[i].Sub(issued[i-1]).Round(100*time.Millisecond), i)
	}
	readerTok, err := idp.sign("reader", "kafka", 10*time.Minute, idp.key)
	if err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, readCommittedAs(t, saslAddr, oauth.Auth{Token: readerTok}.AsMechanism(), topic), total)
	idp.mu.Lock()
	jwks := idp.jwks
	idp.mu.Unlock()
	t.Logf("one stream of %v, %d rows, every row once (read with an IdP-signed OAUTHBEARER token): %d tokens fetched by the server, %d during the stream; JWKS fetched %d times by the broker",
		time.Since(started).Round(time.Second), total, len(issued), len(issued)-atStart, jwks)
	if strings.Contains(srv.log(), "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("an authentication was refused:\n%s", srv.log())
	}
}

// waitUntilFor is waitUntil with its own bound.
func waitUntilFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
