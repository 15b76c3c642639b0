package flightsink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
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
		f.MaxStreams, f.MaxBatchBytes, f.IdleTimeout = 1, 1<<20, 2*time.Second
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
	env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(cfg)}, nil)
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
