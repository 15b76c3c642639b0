package flightsink

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/internal/secret"
)

// AuthConfig is who may connect and what each principal may write.
// Without tokens and users, every client is the anonymous principal, which
// may write everywhere (and the server refuses to listen beyond loopback
// unless AllowAnonymous says that is intended).
type AuthConfig struct {
	// AllowAnonymous lets a server without credentials listen on a
	// non-loopback address.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// Tokens are static bearer tokens, each mapped to a principal.
	Tokens []TokenConfig `yaml:"tokens"`
	// Users log in with the Flight basic-auth handshake (pyarrow's
	// authenticate_basic_token) and get a bearer token back.
	Users []UserConfig `yaml:"users"`
	// Principals say which topics (path.Match patterns, e.g. "orders.*") and
	// delivery modes each principal may use. A principal not listed may do
	// nothing.
	Principals []PrincipalConfig `yaml:"principals"`
	// SessionTTL is how long a token from the handshake stays valid.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

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

// allowTopic reports whether the principal may write to topic.
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
// service.
type authenticator struct {
	tokens map[string]*Principal // static token → principal
	users  map[string]userEntry
	ttl    time.Duration

	mu       sync.Mutex
	sessions map[string]session // handshake tokens
}

type userEntry struct {
	hash      []byte
	principal *Principal
}

type session struct {
	principal *Principal
	expires   time.Time
}

// enabled reports whether any credential is configured.
func (c *AuthConfig) enabled() bool { return len(c.Tokens) > 0 || len(c.Users) > 0 }

// newAuthenticator resolves the secrets and checks the config; errors name
// the setting. It returns nil when no credentials are configured.
func newAuthenticator(c AuthConfig) (*authenticator, error) {
	if !c.enabled() {
		if len(c.Principals) > 0 {
			return nil, fmt.Errorf("auth.principals: set, but no auth.tokens or auth.users authenticate anyone")
		}
		return nil, nil
	}
	principals := map[string]*Principal{}
	for i, pc := range c.Principals {
		if pc.Name == "" || !validIDPart(pc.Name) {
			return nil, fmt.Errorf("auth.principals[%d].name: %q must be non-empty [A-Za-z0-9._-]", i, pc.Name)
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
	a := &authenticator{tokens: map[string]*Principal{}, users: map[string]userEntry{}, ttl: c.SessionTTL, sessions: map[string]session{}}
	if a.ttl <= 0 {
		a.ttl = 12 * time.Hour
	}
	for i, tc := range c.Tokens {
		setting := fmt.Sprintf("auth.tokens[%d]", i)
		tok, err := tc.Token.Resolve(setting + ".token")
		if err != nil {
			return nil, err
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("%s.token: at least 16 characters, please", setting)
		}
		if a.tokens[tok], err = lookup(tc.Principal, setting+".principal"); err != nil {
			return nil, err
		}
	}
	for i, uc := range c.Users {
		setting := fmt.Sprintf("auth.users[%d]", i)
		hash, err := uc.PasswordBcrypt.Resolve(setting + ".password_bcrypt")
		if err != nil {
			return nil, err
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s.password_bcrypt: not a bcrypt hash: %v", setting, err)
		}
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
	return a, nil
}

func validIDPart(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
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

// bearer resolves a bearer token to its principal.
func (a *authenticator) bearer(token string) (*Principal, error) {
	for t, p := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			return p, nil
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.sessions[token]; ok {
		if time.Now().Before(s.expires) {
			return s.principal, nil
		}
		delete(a.sessions, token)
		return nil, unauthenticated("the session token expired; log in again (basic-auth handshake)")
	}
	return nil, unauthenticated("invalid bearer token")
}

// basic checks a username and password and opens a session.
func (a *authenticator) basic(cred string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(cred); err != nil {
			return "", unauthenticated("malformed basic credentials")
		}
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	u, known := a.users[user]
	if !ok || !known || bcrypt.CompareHashAndPassword(u.hash, []byte(pass)) != nil {
		return "", unauthenticated("invalid username or password")
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	a.mu.Lock()
	now := time.Now()
	for t, s := range a.sessions { // drop expired sessions as new ones come
		if now.After(s.expires) {
			delete(a.sessions, t)
		}
	}
	a.sessions[token] = session{principal: u.principal, expires: now.Add(a.ttl)}
	a.mu.Unlock()
	return token, nil
}

const healthService = "/grpc.health.v1.Health/"

// authenticate returns the context of an authenticated RPC.
func (a *authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if strings.HasPrefix(method, healthService) {
		return ctx, nil
	}
	scheme, cred := authHeader(ctx)
	if !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return nil, unauthenticated(`missing credentials: send "authorization: Bearer <token>", or log in with the basic-auth handshake first`)
	}
	p, err := a.bearer(cred)
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if strings.HasSuffix(info.FullMethod, "/Handshake") {
		scheme, cred := authHeader(ss.Context())
		if !strings.EqualFold(scheme, "Basic") {
			return unauthenticated(`the handshake takes "authorization: Basic <base64 user:password>"`)
		}
		token, err := a.basic(cred)
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

// authorize decides, before any row is produced, whether the stream's
// principal may write to the topic with the delivery mode.
func authorize(p *Principal, topic string, d Delivery) error {
	if !p.allowTopic(topic) {
		return newError(codes.PermissionDenied, ReasonForbidden, "principal %q may not write to topic %q (auth.principals[].topics)", p.Name, topic)
	}
	if !p.allowDelivery(d) {
		return newError(codes.PermissionDenied, ReasonForbidden, "principal %q may not use delivery %q (auth.principals[].delivery)", p.Name, d)
	}
	return nil
}
