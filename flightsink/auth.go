package flightsink

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/internal/secret"
	"github.com/flightsink/flightsink/kafka"
)

// AuthConfig is who may connect and what each principal may write.
// Without tokens, users and client certificate principals, every client is
// the anonymous principal, which may write everywhere (and the server
// refuses to listen beyond loopback unless AllowAnonymous says that is
// intended).
type AuthConfig struct {
	// AllowAnonymous lets a server without credentials listen on a
	// non-loopback address.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// AllowInsecureTransport lets bearer tokens and basic auth travel
	// without TLS on a non-loopback listener: for TLS terminated in front of
	// flightsink (a service mesh sidecar, a proxy). Without it such a server
	// refuses to start.
	AllowInsecureTransport bool `yaml:"allow_insecure_transport"`
	// Tokens are static bearer tokens, each mapped to a principal. A token
	// may appear only once.
	Tokens []TokenConfig `yaml:"tokens"`
	// Users log in with the Flight basic-auth handshake (pyarrow's
	// authenticate_basic_token) and get a session bearer token back.
	Users []UserConfig `yaml:"users"`
	// Principals say which topics (path.Match patterns, e.g. "orders.*") and
	// delivery modes each principal may use. A principal not listed may do
	// nothing.
	Principals []PrincipalConfig `yaml:"principals"`
	// SessionTTL is how long a token from the handshake stays valid.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SessionKeys sign and verify the handshake's session tokens
	// (HMAC-SHA256, at least 32 characters each): the first signs, every one
	// verifies, so a key is rotated by listing the new one after the old,
	// then first, then dropping the old. Every replica with the same keys
	// accepts a token, across restarts. Empty: a random key of this process
	// (its tokens die with it and other replicas reject them).
	SessionKeys []secret.Secret `yaml:"session_keys"`
	// ClientCertPrincipal maps a verified client certificate (mutual TLS,
	// flight.tls_client_ca_file) to the principal it names: "subject_cn"
	// (the subject's common name) or "san_dns" (a DNS subject alternative
	// name). Empty: certificates authenticate the connection, not a
	// principal. A bearer token, when sent, takes precedence.
	ClientCertPrincipal string `yaml:"client_cert_principal"`
	// MaxFailures is how many failed authentications (handshakes, bearer
	// tokens) one peer address may make before its attempts are refused
	// with ResourceExhausted; failures age out at MaxFailures per
	// FailureWindow. 0: 10.
	MaxFailures int `yaml:"max_failures"`
	// FailureWindow is the window of MaxFailures. 0: one minute.
	FailureWindow time.Duration `yaml:"failure_window"`

	now     func() time.Time                    // the clock; tests inject one
	compare func(hash, password []byte) error   // bcrypt's; tests count calls
	logRate func() (every time.Duration, n int) // failure log rate; tests shrink it
}

// DefaultAuthConfig returns the documented defaults (see config.yaml): no
// credentials, 12-hour sessions, 10 failed authentications per peer a minute.
func DefaultAuthConfig() AuthConfig {
	return AuthConfig{SessionTTL: defaultSessionTTL, MaxFailures: defaultMaxFailures, FailureWindow: defaultFailureWindow}
}

// defaultSessionTTL is auth.session_ttl's default.
const defaultSessionTTL = 12 * time.Hour

// TokenConfig is a static bearer token of a principal.
type TokenConfig struct {
	Principal string        `yaml:"principal"`
	Token     secret.Secret `yaml:"token"`
}

// UserConfig is a basic-auth user: a bcrypt hash of the password (a hash
// is not a secret, but it may come from a file or the environment too).
type UserConfig struct {
	Username       string        `yaml:"username"`
	PasswordBcrypt secret.Secret `yaml:"password_bcrypt"`
	// Principal defaults to the username.
	Principal string `yaml:"principal"`
}

// PrincipalConfig is what one principal may do.
type PrincipalConfig struct {
	Name string `yaml:"name"`
	// Topics are path.Match patterns; "*" allows every topic.
	Topics []string `yaml:"topics"`
	// Delivery lists the allowed modes; empty allows both.
	Delivery []Delivery `yaml:"delivery"`
	// MaxStreams caps this principal's open streams; 0: only flight.max_streams.
	MaxStreams int `yaml:"max_streams"`
}

// Client certificate principal mappings (AuthConfig.ClientCertPrincipal).
const (
	CertPrincipalSubjectCN = "subject_cn"
	CertPrincipalSANDNS    = "san_dns"
)

// Principal is an authenticated client.
type Principal struct {
	Name       string
	topics     []string
	delivery   []Delivery
	maxStreams int
	anonymous  bool
}

// Anonymous is the principal of every client when no credentials are configured.
var Anonymous = &Principal{Name: "anonymous", topics: []string{"*"}, anonymous: true}

// allowTopic reports whether the principal's patterns allow topic (a
// reserved topic is refused whatever they say: Server.authorize).
func (p *Principal) allowTopic(topic string) bool {
	for _, pat := range p.topics {
		if ok, _ := path.Match(pat, topic); ok {
			return true
		}
	}
	return false
}

func (p *Principal) allowDelivery(d Delivery) bool {
	if len(p.delivery) == 0 {
		return true
	}
	for _, x := range p.delivery {
		if x == d {
			return true
		}
	}
	return false
}

// scopedWriter names a writer inside its principal's namespace, so one
// principal can never fence or read another's writer.
func (p *Principal) scopedWriter(writerID string) string {
	if p.anonymous {
		return writerID
	}
	return p.Name + ":" + writerID
}

// authenticator checks credentials on every RPC except the gRPC health
// service: static bearer tokens, signed session tokens from the basic-auth
// handshake, and (with mutual TLS) client certificates. Failures are
// counted, logged (rate-limited, never a secret) and limited per peer.
type authenticator struct {
	tokens     []staticToken
	users      map[string]userEntry
	principals map[string]*Principal
	// dummy is a bcrypt hash of a random password at the users' cost: an
	// unknown user is compared against it, so answering takes as long as
	// for a known one and usernames cannot be enumerated by timing.
	dummy    []byte
	userCost int // the highest bcrypt cost of auth.users: the dummy's
	compare  func(hash, password []byte) error
	sessions *sessionSigner
	ttl      time.Duration
	certMode string
	limiter  *failureLimiter
	failures *failureLog
	now      func() time.Time
	metrics  *metrics.Metrics
}

// staticToken is a configured bearer token, kept as its SHA-256 so every
// comparison is constant-time over equal lengths.
type staticToken struct {
	digest    [sha256.Size]byte
	principal *Principal
}

type userEntry struct {
	hash      []byte
	principal *Principal
}

// enabled reports whether any credential is configured.
func (c *AuthConfig) enabled() bool {
	return len(c.Tokens) > 0 || len(c.Users) > 0 || c.ClientCertPrincipal != ""
}

// Validate checks the auth settings against the Flight listener's f,
// resolving every secret, as NewServer does before it listens; errors name
// the setting. The binary runs it before connecting to Kafka, so a refused
// configuration fails at once.
func (c AuthConfig) Validate(f Config) error {
	_, err := buildAuthenticator(c, f, nil)
	return err
}

// newAuthenticator resolves the secrets and checks the config against the
// Flight listener's; errors name the setting. It returns nil when no
// credentials are configured.
func newAuthenticator(c AuthConfig, f Config, log zerolog.Logger, m *metrics.Metrics) (*authenticator, error) {
	a, err := buildAuthenticator(c, f, m)
	if a == nil || err != nil {
		return nil, err
	}
	every, burst := failureLogEvery, failureLogBurst
	if c.logRate != nil {
		every, burst = c.logRate()
	}
	a.failures = newFailureLog(log, every, burst)
	if len(a.users) > 0 {
		if a.dummy, err = bcrypt.GenerateFromPassword([]byte(rand.Text()), a.userCost); err != nil {
			return nil, fmt.Errorf("auth.users: making the comparison hash for unknown users: %w", err)
		}
	}
	if len(c.Users) > 0 && len(c.SessionKeys) == 0 {
		log.Warn().Msg("auth.session_keys is not set: handshake session tokens are signed with a key of this process only; " +
			"they stop working when it restarts and other replicas reject them. Set auth.session_keys on every replica.")
	}
	if c.AllowInsecureTransport && f.TLSCertFile == "" && !isLoopback(f.Listen) {
		log.Warn().Str("listen", f.Listen).Msg("auth.allow_insecure_transport: credentials reach this listener without TLS; " +
			"make sure a service mesh or proxy in front terminates TLS")
	}
	return a, nil
}

// buildAuthenticator checks the settings and resolves the secrets; it
// returns nil when no credentials are configured.
func buildAuthenticator(c AuthConfig, f Config, m *metrics.Metrics) (*authenticator, error) {
	if !c.enabled() {
		if len(c.Principals) > 0 {
			return nil, fmt.Errorf("auth.principals: set, but no auth.tokens, auth.users or auth.client_cert_principal authenticate anyone")
		}
		return nil, nil
	}
	if err := checkTransport(c, f); err != nil {
		return nil, err
	}
	principals := map[string]*Principal{}
	for i, pc := range c.Principals {
		if pc.Name == "" || !kafka.ValidIDPart(pc.Name) {
			return nil, fmt.Errorf("auth.principals[%d].name: %q must be non-empty [A-Za-z0-9._-]", i, pc.Name)
		}
		if _, dup := principals[pc.Name]; dup {
			return nil, fmt.Errorf("auth.principals[%d].name: %q is listed twice", i, pc.Name)
		}
		for _, pat := range pc.Topics {
			if _, err := path.Match(pat, ""); err != nil {
				return nil, fmt.Errorf("auth.principals[%d].topics: pattern %q: %v", i, pat, err)
			}
		}
		for _, d := range pc.Delivery {
			if d != AtLeastOnce && d != ExactlyOnce {
				return nil, fmt.Errorf("auth.principals[%d].delivery: %q is not at_least_once or exactly_once", i, d)
			}
		}
		principals[pc.Name] = &Principal{Name: pc.Name, topics: pc.Topics, delivery: pc.Delivery, maxStreams: pc.MaxStreams}
	}
	lookup := func(name, setting string) (*Principal, error) {
		if p, ok := principals[name]; ok {
			return p, nil
		}
		return nil, fmt.Errorf("%s: principal %q is not listed in auth.principals", setting, name)
	}
	a := &authenticator{users: map[string]userEntry{}, principals: principals, ttl: c.SessionTTL,
		certMode: c.ClientCertPrincipal, now: c.now, compare: c.compare, metrics: m}
	if a.ttl <= 0 {
		a.ttl = defaultSessionTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.compare == nil {
		a.compare = bcrypt.CompareHashAndPassword
	}
	var err error
	if a.limiter, err = newFailureLimiter(c.MaxFailures, c.FailureWindow); err != nil {
		return nil, err
	}

	seen := map[[sha256.Size]byte]int{}
	for i, tc := range c.Tokens {
		setting := fmt.Sprintf("auth.tokens[%d]", i)
		tok, err := tc.Token.Resolve(setting + ".token")
		if err != nil {
			return nil, err
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("%s.token: at least 16 characters, please", setting)
		}
		p, err := lookup(tc.Principal, setting+".principal")
		if err != nil {
			return nil, err
		}
		digest := sha256.Sum256([]byte(tok))
		if j, dup := seen[digest]; dup {
			return nil, fmt.Errorf("%s.token: the same token as auth.tokens[%d] (principal %q); every token must be unique, "+
				"or one principal's token would authenticate as the other", setting, j, c.Tokens[j].Principal)
		}
		seen[digest] = i
		a.tokens = append(a.tokens, staticToken{digest: digest, principal: p})
	}
	for i, uc := range c.Users {
		setting := fmt.Sprintf("auth.users[%d]", i)
		if uc.Username == "" || strings.Contains(uc.Username, ":") {
			return nil, fmt.Errorf("%s.username: %q must be non-empty and without \":\"", setting, uc.Username)
		}
		if _, dup := a.users[uc.Username]; dup {
			return nil, fmt.Errorf("%s.username: %q is listed twice", setting, uc.Username)
		}
		hash, err := uc.PasswordBcrypt.Resolve(setting + ".password_bcrypt")
		if err != nil {
			return nil, err
		}
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("%s.password_bcrypt: not a bcrypt hash: %v", setting, err)
		}
		a.userCost = max(a.userCost, c)
		name := uc.Principal
		if name == "" {
			name = uc.Username
		}
		p, err := lookup(name, setting+".principal")
		if err != nil {
			return nil, err
		}
		a.users[uc.Username] = userEntry{hash: []byte(hash), principal: p}
	}
	if a.sessions, err = newSessionSigner(c.SessionKeys); err != nil {
		return nil, err
	}
	return a, nil
}

// checkTransport refuses settings under which credentials would be
// useless or exposed: tokens and passwords in plaintext on a listener other
// hosts can reach (unless TLS is terminated in front, as
// auth.allow_insecure_transport says), or certificate principals without
// verified client certificates.
func checkTransport(c AuthConfig, f Config) error {
	switch c.ClientCertPrincipal {
	case "", CertPrincipalSubjectCN, CertPrincipalSANDNS:
	default:
		return fmt.Errorf("auth.client_cert_principal: %q is not one of %q, %q (or empty: off)",
			c.ClientCertPrincipal, CertPrincipalSubjectCN, CertPrincipalSANDNS)
	}
	if c.ClientCertPrincipal != "" && f.TLSClientCAFile == "" {
		return fmt.Errorf("auth.client_cert_principal: needs verified client certificates: set flight.tls_client_ca_file (mutual TLS)")
	}
	if (len(c.Tokens) > 0 || len(c.Users) > 0) && f.TLSCertFile == "" && !isLoopback(f.Listen) && !c.AllowInsecureTransport {
		return fmt.Errorf("flight.listen: %s is reachable from other hosts without TLS, so the bearer tokens and passwords of "+
			"auth.tokens and auth.users would travel in plaintext; set flight.tls_cert_file and flight.tls_key_file, or "+
			"auth.allow_insecure_transport: true if a service mesh or proxy in front of flightsink terminates TLS", f.Listen)
	}
	return nil
}

type principalKey struct{}

// PrincipalFromContext returns the authenticated principal of an RPC.
func PrincipalFromContext(ctx context.Context) *Principal {
	if p, ok := ctx.Value(principalKey{}).(*Principal); ok {
		return p
	}
	return Anonymous
}

func unauthenticated(msg string) error {
	return status.Error(codes.Unauthenticated, msg)
}

// authHeader reads the authorization header: scheme and credential.
func authHeader(ctx context.Context) (string, string) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) == 0 {
		return "", ""
	}
	scheme, cred, _ := strings.Cut(strings.TrimSpace(v[0]), " ")
	return scheme, strings.TrimSpace(cred)
}

// failure is a refused authentication: what the client is told and, for
// the metrics and the log, why and who (never the secret itself).
type failure struct {
	err    error
	reason string // metrics.Auth* label
	user   string // a known username, when there is one
	// fingerprint identifies an unknown token or username in the log: the
	// first 12 hex digits of its SHA-256.
	fingerprint string
	guess       bool // counts against the peer's failure limit
}

func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", sum[:6])
}

// bearer resolves a bearer token (static, or a session token from the
// handshake) to its principal.
func (a *authenticator) bearer(token string) (*Principal, *failure) {
	digest := sha256.Sum256([]byte(token))
	var found *Principal
	for _, t := range a.tokens { // every token, no early exit
		if subtle.ConstantTimeCompare(t.digest[:], digest[:]) == 1 {
			found = t.principal
		}
	}
	if found != nil {
		return found, nil
	}
	if strings.HasPrefix(token, sessionPrefix) {
		claims, ok := a.sessions.verify(token)
		if ok {
			u, known := a.users[claims.User]
			switch {
			case !known || u.principal.Name != claims.Principal:
				return nil, &failure{err: unauthenticated("the session's user is no longer configured; log in again"),
					reason: metrics.AuthInvalidToken, fingerprint: fingerprint(token), guess: true}
			case !a.now().Before(time.Unix(claims.Expires, 0)):
				return nil, &failure{err: unauthenticated("the session token expired; log in again (basic-auth handshake)"),
					reason: metrics.AuthExpiredSession, user: claims.User}
			}
			return u.principal, nil
		}
	}
	return nil, &failure{err: unauthenticated("invalid bearer token"), reason: metrics.AuthInvalidToken,
		fingerprint: fingerprint(token), guess: true}
}

// basic checks a username and password and returns a signed session
// token. Every attempt with a username costs one bcrypt comparison, against
// the dummy hash when the user is unknown, so a known and an unknown user
// answer alike.
func (a *authenticator) basic(cred string) (string, *failure) {
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(cred); err != nil {
			return "", &failure{err: unauthenticated("malformed basic credentials"), reason: metrics.AuthMalformed, guess: true}
		}
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	u, known := a.users[user]
	hash := a.dummy
	if known {
		hash = u.hash
	}
	if hash == nil { // no users configured: nothing to compare or enumerate
		return "", &failure{err: unauthenticated("invalid username or password"), reason: metrics.AuthUnknownUser,
			fingerprint: fingerprint(user), guess: true}
	}
	match := a.compare(hash, []byte(pass)) == nil
	switch {
	case !known:
		return "", &failure{err: unauthenticated("invalid username or password"), reason: metrics.AuthUnknownUser,
			fingerprint: fingerprint(user), guess: true}
	case !match:
		return "", &failure{err: unauthenticated("invalid username or password"), reason: metrics.AuthBadPassword,
			user: user, guess: true}
	}
	return a.sessions.sign(sessionClaims{User: user, Principal: u.principal.Name, Expires: a.now().Add(a.ttl).Unix()}), nil
}

const healthService = "/grpc.health.v1.Health/"

// authenticate returns the context of an authenticated RPC: the bearer
// token's principal or, without one, the client certificate's.
func (a *authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if strings.HasPrefix(method, healthService) {
		return ctx, nil
	}
	scheme, cred := authHeader(ctx)
	if scheme == "" && a.certMode != "" {
		p, f := a.certPrincipal(ctx)
		if f != nil {
			return nil, a.fail(ctx, f)
		}
		return context.WithValue(ctx, principalKey{}, p), nil
	}
	if !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return nil, a.fail(ctx, &failure{reason: metrics.AuthMissingCredentials, err: unauthenticated(
			`missing credentials: send "authorization: Bearer <token>", or log in with the basic-auth handshake first`)})
	}
	if err := a.checkLimit(ctx); err != nil {
		return nil, err
	}
	p, f := a.bearer(cred)
	if f != nil {
		return nil, a.fail(ctx, f)
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// handshake serves the basic-auth handshake: the session token goes back
// in the "authorization" trailer.
func (a *authenticator) handshake(ss grpc.ServerStream) (string, error) {
	ctx := ss.Context()
	if err := a.checkLimit(ctx); err != nil {
		return "", err
	}
	scheme, cred := authHeader(ctx)
	if !strings.EqualFold(scheme, "Basic") {
		return "", a.fail(ctx, &failure{reason: metrics.AuthMalformed,
			err: unauthenticated(`the handshake takes "authorization: Basic <base64 user:password>"`)})
	}
	token, f := a.basic(cred)
	if f != nil {
		return "", a.fail(ctx, f)
	}
	return token, nil
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	authed, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err // the error interceptor sets the reason
	}
	return handler(authed, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if strings.HasSuffix(info.FullMethod, "/Handshake") {
		token, err := a.handshake(ss)
		if err != nil {
			return err
		}
		ss.SetTrailer(metadata.Pairs("authorization", "Bearer "+token))
		return handler(srv, ss)
	}
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

// authorize decides, from the principal's permissions alone, whether it
// may write to the topic with the delivery mode. Streams call
// Server.authorize, which refuses reserved topics first.
func authorize(p *Principal, topic string, d Delivery) error {
	if !p.allowTopic(topic) {
		return newError(codes.PermissionDenied, ReasonForbidden, "principal %q may not write to topic %q (auth.principals[].topics)", p.Name, topic)
	}
	if !p.allowDelivery(d) {
		return newError(codes.PermissionDenied, ReasonForbidden, "principal %q may not use delivery %q (auth.principals[].delivery)", p.Name, d)
	}
	return nil
}
