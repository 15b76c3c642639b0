package flightsink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/internal/secret"
	"github.com/flightsink/flightsink/kafka"
)

// bearer sends "authorization: Bearer <token>" with every RPC.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// as returns the environment with a client that authenticates with token.
func (e *testEnv) as(t *testing.T, token string, creds credentials.TransportCredentials) *testEnv {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := *e
	c.client = flight.NewFlightServiceClient(conn)
	return &c
}

const loaderToken = "loader-token-0123456789abcdef"

func authOptions(t *testing.T) []flightsink.Option {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(loaderToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_ALICE_BCRYPT", string(hash))
	var cfg flightsink.AuthConfig
	cfg.Tokens = []flightsink.TokenConfig{{Principal: "loader"}}
	cfg.Tokens[0].Token.File = tokenFile
	cfg.Users = []flightsink.UserConfig{{Username: "alice"}}
	cfg.Users[0].PasswordBcrypt.Env = "TEST_ALICE_BCRYPT"
	cfg.Principals = []flightsink.PrincipalConfig{
		{Name: "loader", Topics: []string{"TestAuth*", "TestWriter*"}, Delivery: []flightsink.Delivery{flightsink.ExactlyOnce}},
		{Name: "alice", Topics: []string{"*"}},
	}
	return []flightsink.Option{flightsink.WithAuth(cfg)}
}

// TestAuthTokensAndPermissions: no or wrong credentials are
// Unauthenticated; a principal writes where it may and gets
// PermissionDenied, with nothing written, elsewhere.
func TestAuthTokensAndPermissions(t *testing.T) {
	env := startServerWith(t, authOptions(t), nil)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	other := "other-" + topic
	kafkatest.CreateTopic(t, env.brokers, other, 1, nil)
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()

	res := env.put(t, pathDesc(topic), simpleSchema, batch(rec))
	if res.code != codes.Unauthenticated || !strings.Contains(res.message, "missing credentials") {
		t.Fatalf("no credentials: %v %q, want Unauthenticated", res.code, res.message)
	}
	res = env.as(t, "not-a-token-of-anyone", nil).put(t, pathDesc(topic), simpleSchema, batch(rec))
	if res.code != codes.Unauthenticated || !strings.Contains(res.message, "invalid bearer token") {
		t.Fatalf("bad token: %v %q, want Unauthenticated", res.code, res.message)
	}
	loader := env.as(t, loaderToken, nil)
	wantOK(t, loader.put(t, pathDesc(topic), simpleSchema, batch(rec)))
	res = loader.put(t, pathDesc(other), simpleSchema, batch(rec))
	wantStatus(t, res, codes.PermissionDenied, string(flightsink.ReasonForbidden), `principal "loader" may not write to topic "`+other+`"`)
	res = loader.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once"}), simpleSchema, batch(rec))
	wantStatus(t, res, codes.PermissionDenied, string(flightsink.ReasonForbidden), `may not use delivery "at_least_once"`)
	if n := len(kafkatest.ReadCommitted(t, env.brokers, other)); n != 0 {
		t.Fatalf("a forbidden stream wrote %d records", n)
	}
	if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 3 {
		t.Fatalf("%d records, want the 3 of the allowed stream", n)
	}
}

// TestAuthBasicHandshake: the Flight basic-auth handshake (what pyarrow's
// authenticate_basic_token does) answers with a bearer token that works.
func TestAuthBasicHandshake(t *testing.T) {
	env := startServerWith(t, authOptions(t), nil)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)

	handshake := func(user, pass string) (string, error) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization",
			"Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		hs, err := env.client.Handshake(ctx)
		if err != nil {
			return "", err
		}
		_ = hs.CloseSend()
		for {
			if _, err := hs.Recv(); err != nil {
				if err != io.EOF {
					return "", err
				}
				break
			}
		}
		v := hs.Trailer().Get("authorization")
		if len(v) == 0 {
			return "", nil
		}
		return strings.TrimPrefix(v[0], "Bearer "), nil
	}
	if _, err := handshake("alice", "wrong"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong password: %v, want Unauthenticated", err)
	}
	token, err := handshake("alice", "s3cret password")
	if err != nil || token == "" {
		t.Fatalf("handshake: token %q, %v", token, err)
	}
	rec := simpleBatch(0, 2, -1, 0)
	defer rec.Release()
	wantOK(t, env.as(t, token, nil).put(t, pathDesc(topic), simpleSchema, batch(rec)))
}

// TestWritersAreScopedToPrincipals: two principals using the same
// writer_id have separate writers: neither fences nor sees the other.
func TestWritersAreScopedToPrincipals(t *testing.T) {
	env := startServerWith(t, authOptions(t), nil)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := simpleBatch(0, 2, -1, 0)
	defer rec.Release()
	desc := eosDesc(topic, "writer_id", "shared-"+topic) // one name for both principals
	loader := env.as(t, loaderToken, nil)
	ls, _, err := loader.open(t, desc, simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := ls.checkpoint(rec, 1)
	mustAck(t, ack, err, map[string]any{"checkpoint": 1.0})

	// alice logs in and opens "shared-name": a writer of her own.
	token := loginAlice(t, env)
	als, ready, err := env.as(t, token, nil).open(t, desc, simpleSchema)
	mustAck(t, ready, err, map[string]any{"last_checkpoint": nil, "committed_rows": 0.0})
	ack, err = als.checkpoint(rec, 1)
	mustAck(t, ack, err, map[string]any{"checkpoint": 1.0})
	// The loader's stream was not fenced.
	ack, err = ls.checkpoint(rec, 2)
	mustAck(t, ack, err, map[string]any{"checkpoint": 2.0})
	wantOK(t, ls.finish())
	wantOK(t, als.finish())
}

func loginAlice(t *testing.T, env *testEnv) string {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization",
		"Basic "+base64.StdEncoding.EncodeToString([]byte("alice:s3cret password")))
	hs, err := env.client.Handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = hs.CloseSend()
	for {
		if _, err := hs.Recv(); err != nil {
			break
		}
	}
	return strings.TrimPrefix(hs.Trailer().Get("authorization")[0], "Bearer ")
}

// TestTLS: with a certificate configured the server speaks TLS only.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	env := startServerWith(t, nil, credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}),
		func(f *flightsink.Config, _ *kafka.Config) { f.TLSCertFile, f.TLSKeyFile = certFile, keyFile })
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := simpleBatch(0, 2, -1, 0)
	defer rec.Release()
	wantOK(t, env.put(t, pathDesc(topic), simpleSchema, batch(rec)))

	plain, err := grpc.NewClient(env.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = flight.NewFlightServiceClient(plain).ListActions(ctx, &flight.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext client against a TLS server: %v, want Unavailable", err)
	}
}

// selfSigned writes a self-signed certificate for localhost/127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	kb, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRefusesOpenListenerWithoutAuth: no credentials and a non-loopback
// listen address is a start-up error naming the settings, unless
// auth.allow_anonymous says it is intended.
func TestRefusesOpenListenerWithoutAuth(t *testing.T) {
	cfg := flightsink.DefaultConfig()
	cfg.Listen = "0.0.0.0:8815"
	_, err := flightsink.NewServer(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "flight.listen") || !strings.Contains(err.Error(), "auth.allow_anonymous") {
		t.Fatalf("NewServer: %v; want an error naming flight.listen and auth.allow_anonymous", err)
	}
	if _, err := flightsink.NewServer(cfg, nil, flightsink.WithAuth(flightsink.AuthConfig{AllowAnonymous: true})); err != nil {
		t.Fatalf("with allow_anonymous: %v", err)
	}
}

// TestLimits: each limit is ResourceExhausted (or DeadlineExceeded for an
// idle stream) naming its setting.
func TestLimits(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) {
		f.MaxStreams, f.MaxBatchBytes, f.IdleTimeout, f.StreamQueueTimeout = 1, 1<<20, 2*time.Second, 0
	})
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)

	// An open stream takes the only slot.
	ls, _, err := env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	rec := simpleBatch(0, 2, -1, 0)
	defer rec.Release()
	res := env.put(t, pathDesc(topic), simpleSchema, batch(rec))
	wantStatus(t, res, codes.ResourceExhausted, string(flightsink.ReasonTooManyStreams), "flight.max_streams")

	// The open stream sends nothing: it times out.
	_, err = ls.ack()
	wantStatus(t, ls.statusOf(err), codes.DeadlineExceeded, string(flightsink.ReasonIdle), "flight.idle_timeout (2s)")
	waitFor(t, "the idle stream to be freed", func() bool { return env.srv.ActiveStreams() == 0 })

	big := simpleBatch(0, 3, 1, 2<<20)
	defer big.Release()
	res = env.put(t, pathDesc(topic), simpleSchema, batch(big))
	wantStatus(t, res, codes.ResourceExhausted, string(flightsink.ReasonBatchTooLarge), "flight.max_batch_bytes (1048576)")
	if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 0 {
		t.Fatalf("%d records written, want none", n)
	}
}

// TestTransactionRowLimit: an open transaction over kafka.max_transaction_rows
// is ResourceExhausted naming the setting, and nothing of it is visible.
func TestTransactionRowLimit(t *testing.T) {
	env := startServer(t, func(_ *flightsink.Config, k *kafka.Config) { k.MaxTransactionRows = 5 })
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	small := simpleBatch(0, 4, -1, 0)
	defer small.Release()
	more := simpleBatch(4, 4, -1, 0)
	defer more.Release()
	res := env.put(t, eosDesc(topic), simpleSchema, batchMeta(small, checkpoint(1)), batch(small), batch(more))
	wantStatus(t, res, codes.ResourceExhausted, string(flightsink.ReasonTooLargeTxn), "kafka.max_transaction_rows (5)", "checkpoint more often")
	if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 4 {
		t.Fatalf("%d records visible, want the 4 of checkpoint 1", n)
	}
}

// TestPerPrincipalStreamLimit: a principal's max_streams caps its open
// streams; another principal is not affected.
func TestPerPrincipalStreamLimit(t *testing.T) {
	var cfg flightsink.AuthConfig
	cfg.Tokens = []flightsink.TokenConfig{{Principal: "loader"}}
	cfg.Tokens[0].Token.Value = loaderToken
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "loader", Topics: []string{"*"}, MaxStreams: 1}}
	env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(cfg)}, nil,
		func(f *flightsink.Config, _ *kafka.Config) { f.StreamQueueTimeout = 0 })
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	loader := env.as(t, loaderToken, nil)
	ls, _, err := loader.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	rec := simpleBatch(0, 2, -1, 0)
	defer rec.Release()
	res := loader.put(t, pathDesc(topic), simpleSchema, batch(rec))
	wantStatus(t, res, codes.ResourceExhausted, string(flightsink.ReasonTooManyStreams), `principal "loader"`, "max_streams")
	wantOK(t, ls.finish())
	wantOK(t, loader.put(t, pathDesc(topic), simpleSchema, batch(rec)))
}

// fakeClock is the authenticator's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// handshakeResult is how a basic-auth handshake ended.
type handshakeResult struct {
	token  string
	code   codes.Code
	reason string
	msg    string
}

// handshakeRaw runs the Flight basic-auth handshake (pyarrow's
// authenticate_basic_token) with raw basic credentials.
func handshakeRaw(t *testing.T, env *testEnv, basic string) handshakeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+basic)
	hs, err := env.client.Handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = hs.CloseSend()
	for err == nil {
		_, err = hs.Recv()
	}
	var res handshakeResult
	if err != io.EOF {
		st := status.Convert(err)
		res.code, res.msg = st.Code(), st.Message()
	}
	if v := hs.Trailer().Get(flightsink.TrailerReason); len(v) > 0 {
		res.reason = v[0]
	}
	if v := hs.Trailer().Get("authorization"); res.code == codes.OK && len(v) > 0 {
		res.token = strings.TrimPrefix(v[0], "Bearer ")
	}
	return res
}

func handshake(t *testing.T, env *testEnv, user, pass string) handshakeResult {
	t.Helper()
	return handshakeRaw(t, env, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

// listActions runs ListActions to its end: an authenticated no-op.
func listActions(ctx context.Context, env *testEnv) error {
	stream, err := env.client.ListActions(ctx, &flight.Empty{})
	for err == nil {
		_, err = stream.Recv()
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// scrapeMetrics returns the Prometheus exposition of m.
func scrapeMetrics(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// authFailures reads flightsink_auth_failures_total{reason}.
func authFailures(t *testing.T, m *metrics.Metrics, reason string) string {
	t.Helper()
	prefix := `flightsink_auth_failures_total{reason="` + reason + `"} `
	for _, l := range strings.Split(scrapeMetrics(t, m), "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimPrefix(l, prefix)
		}
	}
	return "missing"
}

// TestAuthUnknownUserCostsOneComparison: usernames cannot be enumerated by
// timing: an unknown user costs the same one bcrypt comparison as a known
// user with a wrong password, against a hash of the same cost, and both
// answer alike. Counted, not timed.
func TestAuthUnknownUserCostsOneComparison(t *testing.T) {
	var cfg flightsink.AuthConfig
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret password"), bcrypt.MinCost+1)
	cfg.Users = []flightsink.UserConfig{{Username: "alice"}}
	cfg.Users[0].PasswordBcrypt.Value = string(hash)
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "alice", Topics: []string{"*"}}}
	var mu sync.Mutex
	var compared [][]byte
	flightsink.SetAuthCompare(&cfg, func(h, pw []byte) error {
		mu.Lock()
		compared = append(compared, h)
		mu.Unlock()
		return bcrypt.CompareHashAndPassword(h, pw)
	})
	env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(cfg)}, nil)

	attempt := func(name, basic string) []byte {
		t.Helper()
		mu.Lock()
		compared = nil
		mu.Unlock()
		res := handshakeRaw(t, env, basic)
		if res.code != codes.Unauthenticated || res.msg != "invalid username or password" {
			t.Errorf("%s: %v %q, want Unauthenticated \"invalid username or password\"", name, res.code, res.msg)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(compared) != 1 {
			t.Fatalf("%s: %d bcrypt comparisons, want exactly 1 (as for a known user)", name, len(compared))
		}
		return compared[0]
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	if h := attempt("known user, wrong password", b64("alice:wrong")); string(h) != string(hash) {
		t.Fatalf("a known user was compared against %q, want her hash", h)
	}
	for name, basic := range map[string]string{
		"unknown user":      b64("mallory:wrong"),
		"no password":       b64("mallory"),
		"empty credentials": b64(":"),
	} {
		h := attempt(name, basic)
		if string(h) == string(hash) {
			t.Fatalf("%s: compared against alice's hash", name)
		}
		if cost, err := bcrypt.Cost(h); err != nil || cost != bcrypt.MinCost+1 {
			t.Fatalf("%s: compared against a hash of cost %d (%v), want the users' cost %d", name, cost, err, bcrypt.MinCost+1)
		}
	}
}

// TestAuthFailuresAreLimitedPerPeer: after auth.max_failures failed
// attempts a peer's handshakes and bearer tokens are refused unchecked with
// ResourceExhausted (reason auth_rate_limited) until failures age out;
// then it may log in again. Time is an injected clock.
func TestAuthFailuresAreLimitedPerPeer(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret password"), bcrypt.MinCost)
	var cfg flightsink.AuthConfig
	cfg.Users = []flightsink.UserConfig{{Username: "alice"}}
	cfg.Users[0].PasswordBcrypt.Value = string(hash)
	cfg.Tokens = []flightsink.TokenConfig{{Principal: "alice"}}
	cfg.Tokens[0].Token.Value = loaderToken
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "alice", Topics: []string{"*"}}}
	cfg.MaxFailures, cfg.FailureWindow = 3, 30*time.Second // one more attempt every 10s
	clock := newFakeClock()
	flightsink.SetAuthClock(&cfg, clock.now)
	var calls atomic.Int64
	flightsink.SetAuthCompare(&cfg, func(h, pw []byte) error { calls.Add(1); return bcrypt.CompareHashAndPassword(h, pw) })
	m := metrics.New()
	env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(cfg), flightsink.WithMetrics(m)}, nil)

	for i := 0; i < 3; i++ {
		if res := handshake(t, env, "alice", "guess"+itoa(i)); res.code != codes.Unauthenticated {
			t.Fatalf("guess %d: %v %q, want Unauthenticated", i, res.code, res.msg)
		}
	}
	limited := func(name string, res handshakeResult) {
		t.Helper()
		if res.code != codes.ResourceExhausted || res.reason != string(flightsink.ReasonAuthRateLimited) ||
			!strings.Contains(res.msg, "auth.max_failures (3)") || !strings.Contains(res.msg, "try again in 10s") {
			t.Fatalf("%s: %v reason %q %q; want ResourceExhausted auth_rate_limited naming auth.max_failures, try again in 10s",
				name, res.code, res.reason, res.msg)
		}
	}
	before := calls.Load()
	limited("the right password while limited", handshake(t, env, "alice", "s3cret password"))
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("a limited peer's handshake cost %d bcrypt comparisons, want none", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := listActions(ctx, env.as(t, "not-a-token-of-anyone", nil)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a bearer token from a limited peer: %v, want ResourceExhausted", err)
	}
	if err := listActions(ctx, env.as(t, loaderToken, nil)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("even a valid token from a limited peer is refused unchecked: %v, want ResourceExhausted", err)
	}

	clock.advance(10 * time.Second) // one failure aged out: one attempt
	res := handshake(t, env, "alice", "s3cret password")
	if res.code != codes.OK || res.token == "" {
		t.Fatalf("after the window: %v %q, want a session token", res.code, res.msg)
	}
	if got := authFailures(t, m, "bad_password"); got != "3" {
		t.Errorf("auth_failures_total{reason=bad_password} = %s, want 3", got)
	}
	if got := authFailures(t, m, "rate_limited"); got != "3" {
		t.Errorf("auth_failures_total{reason=rate_limited} = %s, want 3", got)
	}
}

// TestAuthFailuresAreLoggedAndCounted: each failed authentication is
// counted by reason and logged with the peer and the user (or a SHA-256
// prefix of what was sent), never the secret; the log is rate-limited and
// says how many lines it left out.
func TestAuthFailuresAreLoggedAndCounted(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret password"), bcrypt.MinCost)
	var cfg flightsink.AuthConfig
	cfg.Users = []flightsink.UserConfig{{Username: "alice"}}
	cfg.Users[0].PasswordBcrypt.Value = string(hash)
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "alice", Topics: []string{"*"}}}
	clock := newFakeClock()
	flightsink.SetAuthClock(&cfg, clock.now)
	flightsink.SetAuthLogRate(&cfg, time.Hour, 3)
	m := metrics.New()
	env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(cfg), flightsink.WithMetrics(m)}, nil)

	const badToken = "fs1.not-a-real-session-token-abcdef"
	handshake(t, env, "alice", "wrong-password-1")
	handshake(t, env, "mallory", "wrong-password-2")
	if err := listActions(context.Background(), env.as(t, badToken, nil)); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("bad token: %v", err)
	}
	lines := failureLines(env.logs())
	if len(lines) != 3 {
		t.Fatalf("%d \"authentication failed\" log lines, want 3:\n%s", len(lines), env.logs())
	}
	want := []map[string]any{
		{"reason": "bad_password", "user": "alice"},
		{"reason": "unknown_user", "sha256_prefix": sha256Prefix("mallory")},
		{"reason": "invalid_token", "sha256_prefix": sha256Prefix(badToken)},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("log line %d: %s = %v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
		if p, _ := lines[i]["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("log line %d: peer %q", i, p)
		}
	}
	for _, secret := range []string{"wrong-password-1", "wrong-password-2", badToken, "mallory\""} {
		if strings.Contains(env.logs(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	// Over the log's rate: counted, not logged; the next logged line says
	// how many were left out.
	for i := 0; i < 4; i++ {
		handshake(t, env, "alice", "wrong")
	}
	if n := len(failureLines(env.logs())); n != 3 {
		t.Fatalf("%d log lines after the burst, want still 3", n)
	}
	clock.advance(time.Hour)
	handshake(t, env, "alice", "wrong")
	lines = failureLines(env.logs())
	if len(lines) != 4 || lines[3]["not_logged_before"] != 4.0 {
		t.Fatalf("after an hour: %d lines, the last %v; want 4 with not_logged_before 4", len(lines), lines[len(lines)-1])
	}
	for reason, n := range map[string]string{"bad_password": "6", "unknown_user": "1", "invalid_token": "1", "missing_credentials": "0"} {
		if got := authFailures(t, m, reason); got != n {
			t.Errorf("auth_failures_total{reason=%s} = %s, want %s", reason, got, n)
		}
	}
}

func sha256Prefix(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

// failureLines are the JSON log lines of failed authentications.
func failureLines(logs string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "authentication failed" {
			out = append(out, m)
		}
	}
	return out
}

// TestAuthRefusesDuplicateTokens: one token under two principals would
// authenticate as whichever came last: refused at start-up, naming both
// settings (and not the token).
func TestAuthRefusesDuplicateTokens(t *testing.T) {
	var cfg flightsink.AuthConfig
	cfg.Tokens = []flightsink.TokenConfig{{Principal: "loader"}, {Principal: "etl"}}
	cfg.Tokens[0].Token.Value = loaderToken
	cfg.Tokens[1].Token.Value = loaderToken
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "loader", Topics: []string{"a"}}, {Name: "etl", Topics: []string{"*"}}}
	_, err := flightsink.NewServer(flightsink.DefaultConfig(), nil, flightsink.WithAuth(cfg))
	if err == nil || !strings.Contains(err.Error(), "auth.tokens[1].token") || !strings.Contains(err.Error(), "auth.tokens[0]") {
		t.Fatalf("NewServer: %v; want an error naming auth.tokens[1].token and auth.tokens[0]", err)
	}
	if strings.Contains(err.Error(), loaderToken) {
		t.Fatalf("the error shows the token: %v", err)
	}
}

// TestAuthRefusesPlaintextCredentialsBeyondLoopback: bearer tokens or basic
// auth on a listener other hosts can reach need TLS, or the explicit
// auth.allow_insecure_transport (TLS terminated by a mesh or proxy).
func TestAuthRefusesPlaintextCredentialsBeyondLoopback(t *testing.T) {
	var tokens flightsink.AuthConfig
	tokens.Tokens = []flightsink.TokenConfig{{Principal: "loader"}}
	tokens.Tokens[0].Token.Value = loaderToken
	tokens.Principals = []flightsink.PrincipalConfig{{Name: "loader", Topics: []string{"*"}}}
	users := tokens
	users.Tokens = nil
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	users.Users = []flightsink.UserConfig{{Username: "loader"}}
	users.Users[0].PasswordBcrypt.Value = string(hash)
	certFile, keyFile, _ := selfSigned(t)
	for name, auth := range map[string]flightsink.AuthConfig{"tokens": tokens, "users": users} {
		for _, listen := range []string{"0.0.0.0:8815", ":8815", "10.1.2.3:8815", "[::]:8815"} {
			cfg := flightsink.DefaultConfig()
			cfg.Listen = listen
			_, err := flightsink.NewServer(cfg, nil, flightsink.WithAuth(auth))
			if err == nil || !strings.Contains(err.Error(), "flight.tls_cert_file") || !strings.Contains(err.Error(), "auth.allow_insecure_transport") {
				t.Errorf("%s on %s without TLS: %v; want an error naming flight.tls_cert_file and auth.allow_insecure_transport", name, listen, err)
			}
			optOut := auth
			optOut.AllowInsecureTransport = true
			if _, err := flightsink.NewServer(cfg, nil, flightsink.WithAuth(optOut)); err != nil {
				t.Errorf("%s on %s with allow_insecure_transport: %v", name, listen, err)
			}
			cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
			if _, err := flightsink.NewServer(cfg, nil, flightsink.WithAuth(auth)); err != nil {
				t.Errorf("%s on %s with TLS: %v", name, listen, err)
			}
		}
		for _, listen := range []string{"127.0.0.1:8815", "localhost:8815", "[::1]:8815"} {
			cfg := flightsink.DefaultConfig()
			cfg.Listen = listen
			if _, err := flightsink.NewServer(cfg, nil, flightsink.WithAuth(auth)); err != nil {
				t.Errorf("%s on loopback %s: %v", name, listen, err)
			}
		}
	}
}

// sessionAuth is a user alice whose sessions are signed with keys.
func sessionAuth(t *testing.T, clock *fakeClock, keys ...string) []flightsink.Option {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret password"), bcrypt.MinCost)
	var cfg flightsink.AuthConfig
	cfg.Users = []flightsink.UserConfig{{Username: "alice"}}
	cfg.Users[0].PasswordBcrypt.Value = string(hash)
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "alice", Topics: []string{"*"}}}
	cfg.SessionTTL = time.Hour
	for _, k := range keys {
		var s secret.Secret
		s.Value = k
		cfg.SessionKeys = append(cfg.SessionKeys, s)
	}
	flightsink.SetAuthClock(&cfg, clock.now)
	return []flightsink.Option{flightsink.WithAuth(cfg)}
}

// TestAuthSessionTokensWorkOnEveryReplica: a handshake's session token is
// signed with auth.session_keys, so every replica (and a restarted one)
// with the keys accepts it, a replica with other keys does not, a rotated
// key still verifies, and it expires after auth.session_ttl.
func TestAuthSessionTokensWorkOnEveryReplica(t *testing.T) {
	const oldKey, newKey = "old-session-key-0123456789abcdef0123", "new-session-key-0123456789abcdef0123"
	clock := newFakeClock()
	a := startServerWith(t, sessionAuth(t, clock, oldKey), nil)
	b := startServerWith(t, sessionAuth(t, clock, oldKey), nil)               // another replica, or a after a restart
	rotated := startServerWith(t, sessionAuth(t, clock, newKey, oldKey), nil) // signs with the new key, accepts the old
	other := startServerWith(t, sessionAuth(t, clock, newKey), nil)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, a.brokers, topic, 1, nil)
	rec := simpleBatch(0, 2, -1, 0)
	defer rec.Release()

	res := handshake(t, a, "alice", "s3cret password")
	if res.code != codes.OK || !strings.HasPrefix(res.token, "fs1.") {
		t.Fatalf("handshake: %v %q, token %q", res.code, res.msg, res.token)
	}
	for name, env := range map[string]*testEnv{"the replica that issued it": a, "another replica": b, "a replica with a rotated key": rotated} {
		if r := env.as(t, res.token, nil).put(t, pathDesc(topic), simpleSchema, batch(rec)); r.err != nil {
			t.Errorf("%s: %v", name, r.err)
		}
	}
	r := other.as(t, res.token, nil).put(t, pathDesc(topic), simpleSchema, batch(rec))
	if r.code != codes.Unauthenticated {
		t.Errorf("a replica without the key: %v, want Unauthenticated", r.err)
	}
	// A forged token: the claims changed, the signature kept.
	forged := strings.Replace(res.token, res.token[4:10], "AAAAAA", 1)
	if r := b.as(t, forged, nil).put(t, pathDesc(topic), simpleSchema, batch(rec)); r.code != codes.Unauthenticated {
		t.Errorf("an altered token: %v, want Unauthenticated", r.err)
	}
	clock.advance(time.Hour)
	r = b.as(t, res.token, nil).put(t, pathDesc(topic), simpleSchema, batch(rec))
	if r.code != codes.Unauthenticated || !strings.Contains(r.message, "expired") {
		t.Errorf("after auth.session_ttl: %v %q, want Unauthenticated: expired", r.code, r.message)
	}
	if n := len(kafkatest.ReadCommitted(t, a.brokers, topic)); n != 6 {
		t.Errorf("%d records, want the 6 of the three accepted streams", n)
	}
}

// TestAuthSessionKeysAreChecked: a short session key is refused at start-up.
func TestAuthSessionKeysAreChecked(t *testing.T) {
	opts := sessionAuth(t, newFakeClock(), "short")
	_, err := flightsink.NewServer(flightsink.DefaultConfig(), nil, opts...)
	if err == nil || !strings.Contains(err.Error(), "auth.session_keys[0]") {
		t.Fatalf("NewServer: %v; want an error naming auth.session_keys[0]", err)
	}
}

// testPKI is a CA that issues server and client certificates for a test.
type testPKI struct {
	t      *testing.T
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	pool   *x509.CertPool
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flightsink test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{t: t, dir: t.TempDir(), ca: ca, caKey: key, pool: x509.NewCertPool(), serial: 1}
	p.pool.AddCert(ca)
	p.caFile = filepath.Join(p.dir, "ca.pem")
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue makes a certificate signed by the CA; it returns it and the
// paths of its PEM certificate and key.
func (p *testPKI) issue(cn string, dns []string, server bool) (tls.Certificate, string, string) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"test"}},
		DNSNames: dns, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	name := filepath.Join(p.dir, fmt.Sprintf("cert-%d", p.serial))
	_ = os.WriteFile(name+".pem", certPEM, 0o600)
	_ = os.WriteFile(name+".key", keyPEM, 0o600)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		p.t.Fatal(err)
	}
	return cert, name + ".pem", name + ".key"
}

// client is the transport credentials of a client presenting cert.
func (p *testPKI) client(cert tls.Certificate) credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{RootCAs: p.pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}})
}

// withCreds returns the environment with a client that uses creds alone.
func (e *testEnv) withCreds(t *testing.T, creds credentials.TransportCredentials) *testEnv {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := *e
	c.client = flight.NewFlightServiceClient(conn)
	return &c
}

// TestAuthClientCertificatePrincipal: with mutual TLS, a verified client
// certificate names its principal (by subject CN or DNS SAN, as
// auth.client_cert_principal says), so a certificate-only deployment has
// per-principal permissions; a certificate naming no principal is refused.
func TestAuthClientCertificatePrincipal(t *testing.T) {
	pki := newTestPKI(t)
	_, serverCert, serverKey := pki.issue("localhost", []string{"localhost"}, true)
	for _, mode := range []string{flightsink.CertPrincipalSubjectCN, flightsink.CertPrincipalSANDNS} {
		t.Run(mode, func(t *testing.T) {
			var auth flightsink.AuthConfig
			auth.ClientCertPrincipal = mode
			auth.Principals = []flightsink.PrincipalConfig{
				{Name: "loader", Topics: []string{"TestAuth*"}},
				{Name: "etl.example.com", Topics: []string{"*"}},
			}
			loaderCert, _, _ := pki.issue("loader", []string{"loader"}, false)
			etlCert, _, _ := pki.issue("etl.example.com", []string{"other.example.com", "etl.example.com"}, false)
			nobodyCert, _, _ := pki.issue("nobody", []string{"nobody.example.com"}, false)
			env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(auth)}, pki.client(loaderCert),
				func(f *flightsink.Config, _ *kafka.Config) {
					f.TLSCertFile, f.TLSKeyFile, f.TLSClientCAFile = serverCert, serverKey, pki.caFile
				})
			loaders := "TestAuth-" + kafkatest.TopicName(t)
			other := "other-" + kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, env.brokers, loaders, 1, nil)
			kafkatest.CreateTopic(t, env.brokers, other, 1, nil)
			rec := simpleBatch(0, 2, -1, 0)
			defer rec.Release()

			wantOK(t, env.put(t, pathDesc(loaders), simpleSchema, batch(rec)))
			res := env.put(t, pathDesc(other), simpleSchema, batch(rec))
			wantStatus(t, res, codes.PermissionDenied, string(flightsink.ReasonForbidden), `principal "loader" may not write to topic`)
			etl := env.withCreds(t, pki.client(etlCert))
			wantOK(t, etl.put(t, pathDesc(other), simpleSchema, batch(rec)))
			res = env.withCreds(t, pki.client(nobodyCert)).put(t, pathDesc(loaders), simpleSchema, batch(rec))
			if res.code != codes.Unauthenticated || !strings.Contains(res.message, "names no principal") {
				t.Fatalf("a certificate naming no principal: %v %q, want Unauthenticated", res.code, res.message)
			}
			if n := len(kafkatest.ReadCommitted(t, env.brokers, other)); n != 2 {
				t.Fatalf("%d records in %s, want the etl stream's 2", n, other)
			}
		})
	}
	// Certificate principals need verified client certificates.
	var auth flightsink.AuthConfig
	auth.ClientCertPrincipal = flightsink.CertPrincipalSubjectCN
	auth.Principals = []flightsink.PrincipalConfig{{Name: "loader", Topics: []string{"*"}}}
	cfg := flightsink.DefaultConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = serverCert, serverKey
	if _, err := flightsink.NewServer(cfg, nil, flightsink.WithAuth(auth)); err == nil || !strings.Contains(err.Error(), "flight.tls_client_ca_file") {
		t.Fatalf("client_cert_principal without a client CA: %v; want an error naming flight.tls_client_ca_file", err)
	}
}
