package kafka

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/flightsink/flightsink/internal/secret"
)

// writeSecret replaces path with v the way rotation tools do (rename).
func writeSecret(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log destination safe for kgo's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeClock is a settable clock for credentials.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testCredentials builds kafka.sasl's credentials with a log buffer and a
// fake clock starting now.
func testCredentials(t *testing.T, cfg SASLConfig, brokers ...string) (*credentials, *syncBuffer, *fakeClock) {
	t.Helper()
	logs := &syncBuffer{}
	if len(brokers) == 0 {
		brokers = []string{"127.0.0.1:9092"}
	}
	c, err := newCredentials(cfg, brokers, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now()}
	c.now = clock.now
	return c, logs, clock
}

// firstMessage runs the client side of one authentication as kgo does and
// returns the mechanism's first message.
func firstMessage(t *testing.T, c *credentials, host string) []byte {
	t.Helper()
	_, msg, err := c.mechanism().Authenticate(context.Background(), host)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return msg
}

// bearerOf is the token of an OAUTHBEARER client-first message (RFC 7628).
func bearerOf(t *testing.T, msg []byte) string {
	t.Helper()
	_, rest, ok := strings.Cut(string(msg), "auth=Bearer ")
	if !ok {
		t.Fatalf("no bearer token in %q", msg)
	}
	tok, _, _ := strings.Cut(rest, "\x01")
	return tok
}

// unsecuredJWT is an unsigned JWT as Kafka's unsecured OAUTHBEARER
// validator takes them.
func unsecuredJWT(sub string, iat, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, sub, iat.Unix(), exp.Unix())) + "."
}

// TestCredentialsReadAtEveryAuthentication: a secret file replaced while
// the server runs is what the next authentication sends (PLAIN password,
// OAUTHBEARER token, MSK IAM keys); before, kafka.sasl was read once.
func TestCredentialsReadAtEveryAuthentication(t *testing.T) {
	dir := t.TempDir()
	t.Run("PLAIN", func(t *testing.T) {
		pw := filepath.Join(dir, "password")
		writeSecret(t, pw, "first")
		c, logs, _ := testCredentials(t, SASLConfig{Mechanism: "PLAIN", Username: "u", Password: secret.Secret{File: pw}})
		if got := string(firstMessage(t, c, "b:9092")); got != "\x00u\x00first" {
			t.Fatalf("first message %q", got)
		}
		writeSecret(t, pw, "second")
		if got := string(firstMessage(t, c, "b:9092")); got != "\x00u\x00second" {
			t.Fatalf("after rotation: first message %q; want the new password", got)
		}
		if !strings.Contains(logs.String(), "Kafka credential changed") || strings.Contains(logs.String(), "second") {
			t.Fatalf("log should say the credential changed, without it:\n%s", logs)
		}
	})
	t.Run("OAUTHBEARER", func(t *testing.T) {
		path := filepath.Join(dir, "token")
		now := time.Now()
		one, two := unsecuredJWT("one", now, now.Add(time.Hour)), unsecuredJWT("two", now, now.Add(2*time.Hour))
		writeSecret(t, path, one)
		c, _, _ := testCredentials(t, SASLConfig{Mechanism: "OAUTHBEARER", Token: secret.Secret{File: path},
			Extensions: map[string]string{"logicalCluster": "lkc-1"}})
		msg := firstMessage(t, c, "b:9092")
		if bearerOf(t, msg) != one || !strings.Contains(string(msg), "logicalCluster=lkc-1") {
			t.Fatalf("first message %q; want token one and the extension", msg)
		}
		writeSecret(t, path, two)
		if bearerOf(t, firstMessage(t, c, "b:9092")) != two {
			t.Fatal("after rotation the old token was sent")
		}
	})
	t.Run("AWS_MSK_IAM static keys", func(t *testing.T) {
		key, sec := filepath.Join(dir, "ak"), filepath.Join(dir, "sk")
		writeSecret(t, key, "AKIAFIRST")
		writeSecret(t, sec, "secret-1")
		c, _, _ := testCredentials(t, SASLConfig{Mechanism: "AWS_MSK_IAM",
			AWSAccessKey: secret.Secret{File: key}, AWSSecretKey: secret.Secret{File: sec}})
		host := "b-1.demo.abc.c2.kafka.eu-west-1.amazonaws.com:9098"
		if got := mskCredential(t, firstMessage(t, c, host)); !strings.HasPrefix(got, "AKIAFIRST/") {
			t.Fatalf("x-amz-credential %q", got)
		}
		writeSecret(t, key, "AKIASECOND")
		if got := mskCredential(t, firstMessage(t, c, host)); !strings.HasPrefix(got, "AKIASECOND/") {
			t.Fatalf("after rotation: x-amz-credential %q; want the new key", got)
		}
	})
}

// mskCredential is the x-amz-credential of an AWS_MSK_IAM first message
// (access key id/date/region/kafka-cluster/aws4_request).
func mskCredential(t *testing.T, msg []byte) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("MSK IAM message %q: %v", msg, err)
	}
	return m["x-amz-credential"]
}

// TestTokenExpiryWarnings: a JWT read from kafka.sasl.token that expires
// soon, then one that expired, are each logged once as warnings, before
// the broker refuses them; a replacement is logged with its expiry.
func TestTokenExpiryWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	now := time.Now().Truncate(time.Second) // JWT times are whole seconds
	writeSecret(t, path, unsecuredJWT("svc", now, now.Add(100*time.Second)))
	c, logs, clock := testCredentials(t, SASLConfig{Mechanism: "OAUTHBEARER", Token: secret.Secret{File: path}})
	clock.t = now
	auth := func() { firstMessage(t, c, "b:9092") }
	count := func(s string) int { return strings.Count(logs.String(), s) }

	auth()
	if count(`"level":"warn"`) != 0 || count("OAUTHBEARER token read") != 1 {
		t.Fatalf("a fresh token: want one info line and no warning:\n%s", logs)
	}
	clock.add(85 * time.Second) // 15 s left of 100: more than a tenth
	auth()
	if count(`"level":"warn"`) != 0 {
		t.Fatalf("15 s of 100 left: no warning yet:\n%s", logs)
	}
	clock.add(6 * time.Second) // 9 s left: less than a tenth
	auth()
	auth()
	if count("expires in 9s and was not replaced yet") != 1 {
		t.Fatalf("9 s left: want one warning:\n%s", logs)
	}
	clock.add(20 * time.Second)
	auth()
	auth()
	if count("expired 11s ago and was not replaced") != 1 {
		t.Fatalf("expired: want one warning:\n%s", logs)
	}
	ae := c.refusal(fmt.Errorf("%w: %s", kerr.SaslAuthenticationFailed, `{"status":"invalid_token"}`))
	want := "Kafka refused authentication (SASL OAUTHBEARER): invalid_token (SASL_AUTHENTICATION_FAILED); the token from file " +
		path + " (kafka.sasl.token, sub \"svc\") expired at "
	if ae == nil || !strings.HasPrefix(ae.Error(), want) || !strings.Contains(ae.Error(), "(11s ago) and was not replaced since") {
		t.Fatalf("refusal: %v\nwant it to start %q and say how long ago the token expired", ae, want)
	}
	if !errors.Is(ae, ErrAuthFailed) || !errors.Is(ae, kerr.SaslAuthenticationFailed) {
		t.Fatal("an AuthError is ErrAuthFailed and keeps kgo's error")
	}

	writeSecret(t, path, unsecuredJWT("svc", clock.now(), clock.now().Add(time.Hour)))
	auth()
	if count("OAUTHBEARER token read") != 2 || count(`"level":"warn"`) != 2 {
		t.Fatalf("replaced: want a second info line, no new warning:\n%s", logs)
	}
}

// tokenEndpoint is an OAuth 2 client-credentials endpoint for tests: it
// checks the client's id and secret (HTTP basic, as golang.org/x/oauth2
// sends them) and issues tokens valid for lifetime.
type tokenEndpoint struct {
	srv      *httptest.Server
	mu       sync.Mutex
	secret   string // the client secret it accepts
	lifetime time.Duration
	issued   int
	down     bool
	scopes   []string
}

func newTokenEndpoint(t *testing.T, secret string, lifetime time.Duration) *tokenEndpoint {
	e := &tokenEndpoint{secret: secret, lifetime: lifetime}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		id, sec, _ := r.BasicAuth()
		_ = r.ParseForm()
		e.scopes = append(e.scopes, r.PostForm.Get("scope"))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case e.down:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
			return
		case r.PostForm.Get("grant_type") != "client_credentials" || id != "flightsink" || sec != e.secret:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"bad client credentials"}`))
			return
		}
		e.issued++
		now := time.Now()
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": id, "iat": now.Unix(), "exp": now.Add(e.lifetime).Unix(), "n": e.issued,
		}).SignedString([]byte("test"))
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(e.lifetime.Seconds())})
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *tokenEndpoint) set(f func(e *tokenEndpoint)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

// TestOIDCTokens: OAUTHBEARER tokens from kafka.sasl.token_endpoint_url are
// fetched with the client-credentials grant, reused until 80% of their
// lifetime, then fetched again; the client secret is read again for each
// fetch; an endpoint that fails while the token is still valid costs
// nothing, and once it expired the error names the endpoint.
func TestOIDCTokens(t *testing.T) {
	ep := newTokenEndpoint(t, "s1", 100*time.Second)
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	writeSecret(t, secretFile, "s1")
	c, logs, clock := testCredentials(t, SASLConfig{Mechanism: "OAUTHBEARER", TokenEndpointURL: ep.srv.URL + "/token",
		ClientID: "flightsink", ClientSecret: secret.Secret{File: secretFile}, Scope: "kafka write"})
	token := func() string { return bearerOf(t, firstMessage(t, c, "b:9092")) }

	first := token()
	for range 5 {
		if token() != first {
			t.Fatal("a new token before 80% of the lifetime")
		}
	}
	clock.add(79 * time.Second)
	if token() != first || c.oidc.fetched() != 1 {
		t.Fatalf("at 79%% of the lifetime: want the first token, fetched once (fetched %d)", c.oidc.fetched())
	}
	clock.add(2 * time.Second)
	second := token()
	if second == first || c.oidc.fetched() != 2 {
		t.Fatalf("at 81%% of the lifetime: want a new token (fetched %d)", c.oidc.fetched())
	}
	if ep.scopes[0] != "kafka write" {
		t.Fatalf("scope sent %q; want \"kafka write\"", ep.scopes[0])
	}

	// The client secret rotates: the IdP takes only the new one, the next
	// fetch reads it.
	ep.set(func(e *tokenEndpoint) { e.secret = "s2" })
	writeSecret(t, secretFile, "s2")
	clock.add(81 * time.Second)
	if third := token(); third == second || c.oidc.fetched() != 3 {
		t.Fatalf("after the secret rotated: want a third token (fetched %d)", c.oidc.fetched())
	}

	// The endpoint is down: the current token serves while it is valid.
	ep.set(func(e *tokenEndpoint) { e.down = true })
	clock.add(81 * time.Second)
	current := c.oidc.tok
	if token() != current || !strings.Contains(logs.String(), "authenticating with the current one until it expires") {
		t.Fatalf("endpoint down, token valid: want the current token and a warning:\n%s", logs)
	}
	clock.add(20 * time.Second) // past its expiry
	_, _, err := c.mechanism().Authenticate(context.Background(), "b:9092")
	want := "Kafka credentials unavailable (SASL OAUTHBEARER): fetching a token from " + ep.srv.URL + "/token (kafka.sasl.token_endpoint_url, client_id \"flightsink\")"
	if !errors.Is(err, ErrAuthFailed) || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), `oauth2: "temporarily_unavailable"`) {
		t.Fatalf("endpoint down, token expired: %v\nwant an AuthError starting %q with the OAuth error", err, want)
	}
	if c.failureSince(clock.now()) == nil {
		t.Fatal("the failure was not remembered for errors that time out")
	}
}

// TestOIDCBackgroundRefresh: once a token was fetched, the next ones are
// fetched in the background at 80% of each one's lifetime, with no
// authentication asking; a failing endpoint is retried until it answers;
// the refresher ends with its context.
func TestOIDCBackgroundRefresh(t *testing.T) {
	ep := newTokenEndpoint(t, "s", time.Second)
	c, logs, _ := testCredentials(t, SASLConfig{Mechanism: "OAUTHBEARER", TokenEndpointURL: ep.srv.URL,
		ClientID: "flightsink", ClientSecret: secret.Secret{Value: "s"}})
	c.now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	c.start(ctx)
	issued := func() int { ep.mu.Lock(); defer ep.mu.Unlock(); return ep.issued }
	firstMessage(t, c, "b:9092") // the first token, fetched by an authentication
	eventually(t, "three tokens fetched in the background", func() bool { return issued() >= 4 })

	ep.set(func(e *tokenEndpoint) { e.down = true })
	eventually(t, "a failed refresh to be logged", func() bool { return strings.Contains(logs.String(), "retrying") })
	n := issued()
	ep.set(func(e *tokenEndpoint) { e.down = false })
	eventually(t, "the refresher to recover", func() bool { return issued() > n })
	cancel()
	c.wait()
}

// TestOIDCBadClientSecret: a refused client secret names the endpoint and
// the OAuth error.
func TestOIDCBadClientSecret(t *testing.T) {
	ep := newTokenEndpoint(t, "right", time.Hour)
	c, _, _ := testCredentials(t, SASLConfig{Mechanism: "OAUTHBEARER", TokenEndpointURL: ep.srv.URL,
		ClientID: "flightsink", ClientSecret: secret.Secret{Value: "wrong"}})
	_, _, err := c.mechanism().Authenticate(context.Background(), "b:9092")
	if err == nil || !strings.Contains(err.Error(), `oauth2: "invalid_client" "bad client credentials"`) ||
		!strings.Contains(err.Error(), "kafka.sasl.token_endpoint_url") {
		t.Fatalf("wrong client secret: %v", err)
	}
}

// TestAuthErrorWording: what each refusal says.
func TestAuthErrorWording(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	writeSecret(t, pw, "x")
	c, _, _ := testCredentials(t, SASLConfig{Mechanism: "scram-sha-512", Username: "loader", Password: secret.Secret{File: pw}})
	kgoErr := fmt.Errorf("%w: %s", kerr.SaslAuthenticationFailed,
		"Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512")
	wrapped := fmt.Errorf("looking up topic \"t\": %w", kgoErr)
	want := `Kafka refused authentication (SASL SCRAM-SHA-512): Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (SASL_AUTHENTICATION_FAILED); user "loader", password from file ` + pw + ` (kafka.sasl.password)`
	if got := c.refusal(wrapped); got == nil || got.Error() != want {
		t.Fatalf("refusal:\n got %v\nwant %s", got, want)
	}
	if c.refusal(errors.New("connection refused")) != nil || c.refusal(kerr.TopicAuthorizationFailed) != nil {
		t.Fatal("only authentication failures are AuthErrors")
	}
	var none *credentials
	if none.refusal(kgoErr) != nil || none.failureSince(time.Time{}) != nil {
		t.Fatal("without SASL there is nothing to explain")
	}
}

// TestSASLValidate: kafka.sasl settings that cannot work are refused at
// start-up, naming the setting.
func TestSASLValidate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		cfg  SASLConfig
		want string
	}{
		{SASLConfig{Mechanism: "GSSAPI"}, "kafka.sasl.mechanism"},
		{SASLConfig{Username: "u"}, "kafka.sasl.mechanism: credentials are set but no mechanism"},
		{SASLConfig{Mechanism: "PLAIN", Username: "u"}, "kafka.sasl.password: required"},
		{SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", Password: secret.Secret{File: missing}}, "kafka.sasl.password"},
		{SASLConfig{Mechanism: "OAUTHBEARER"}, "kafka.sasl.token or kafka.sasl.token_endpoint_url"},
		{SASLConfig{Mechanism: "OAUTHBEARER", Token: secret.Secret{Value: "t"}, TokenEndpointURL: "https://idp/token"}, "exactly one"},
		{SASLConfig{Mechanism: "OAUTHBEARER", TokenEndpointURL: "https://idp/token", ClientSecret: secret.Secret{Value: "s"}}, "kafka.sasl.client_id"},
		{SASLConfig{Mechanism: "OAUTHBEARER", TokenEndpointURL: "https://idp/token", ClientID: "c"}, "kafka.sasl.client_secret"},
		{SASLConfig{Mechanism: "OAUTHBEARER", TokenEndpointURL: "http://idp.example.com/token", ClientID: "c", ClientSecret: secret.Secret{Value: "s"}}, "clear text"},
		{SASLConfig{Mechanism: "OAUTHBEARER", TokenEndpointURL: "ftp://idp/token", ClientID: "c", ClientSecret: secret.Secret{Value: "s"}}, "not an http(s) URL"},
		{SASLConfig{Mechanism: "OAUTHBEARER", Token: secret.Secret{Value: "t"}, ClientID: "c"}, "only used with kafka.sasl.token_endpoint_url"},
		{SASLConfig{Mechanism: "OAUTHBEARER", Token: secret.Secret{Value: "t"}, Extensions: map[string]string{"auth": "x"}}, "kafka.sasl.extensions"},
		{SASLConfig{Mechanism: "OAUTHBEARER", Token: secret.Secret{Value: "t"}, Password: secret.Secret{Value: "p"}}, "kafka.sasl.password: not used"},
		{SASLConfig{Mechanism: "AWS_MSK_IAM", AWSAccessKey: secret.Secret{Value: "a"}}, "set both"},
		{SASLConfig{Mechanism: "AWS_MSK_IAM", AWSSessionToken: secret.Secret{Value: "a"}}, "kafka.sasl.aws_session_token"},
		{SASLConfig{Mechanism: "PLAIN", Username: "u", Password: secret.Secret{Value: "p"}, Token: secret.Secret{Value: "t"}}, "kafka.sasl.token: not used"},
	} {
		err := c.cfg.validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want an error containing %q", c.cfg, err, c.want)
		}
	}
	for _, ok := range []SASLConfig{
		{},
		{Mechanism: "OAUTHBEARER", TokenEndpointURL: "http://127.0.0.1:8080/token", ClientID: "c", ClientSecret: secret.Secret{Value: "s"}},
		{Mechanism: "OAUTHBEARER", TokenEndpointURL: "https://idp.example.com/token", ClientID: "c", ClientSecret: secret.Secret{Value: "s"}, Scope: "kafka"},
		{Mechanism: "AWS_MSK_IAM"},
	} {
		if err := ok.validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// TestMSKRegion: the SDK's default region comes from MSK broker names.
func TestMSKRegion(t *testing.T) {
	for in, want := range map[string]string{
		"b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com:9098":     "eu-west-1",
		"boot-abc.c1.kafka-serverless.us-east-2.amazonaws.com:9098": "us-east-2",
		"b-2.demo.x.c3.kafka.cn-north-1.amazonaws.com.cn:9098":      "cn-north-1",
		"127.0.0.1:9092":                  "",
		"kafka.internal.example.com:9092": "",
	} {
		if got := mskRegion([]string{in}); got != want {
			t.Errorf("mskRegion(%s) = %q; want %q", in, got, want)
		}
	}
}

// TestKgoLogsErrorsWithText: kgo's errors are logged with their text (a
// zerolog Interface field shows an error as {}), and authentication
// failures among them are remembered.
func TestKgoLogsErrorsWithText(t *testing.T) {
	var buf bytes.Buffer
	var seen []error
	l := kzeroLogger{log: zerolog.New(&buf), onErr: func(err error) { seen = append(seen, err) }}
	boom := fmt.Errorf("%w: %s", kerr.SaslAuthenticationFailed, `{"status":"invalid_token"}`)
	l.Log(1, "unable to initialize sasl", "broker", 1, "err", boom)
	if !strings.Contains(buf.String(), `"err":"SASL_AUTHENTICATION_FAILED: SASL Authentication failed.: {\"status\":\"invalid_token\"}"`) {
		t.Fatalf("log line %s: want the error's text", buf.String())
	}
	if len(seen) != 1 || seen[0] != boom {
		t.Fatalf("onErr saw %v", seen)
	}
}
