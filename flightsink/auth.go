package flightsink

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/internal/metrics"
)

// Principal is an authenticated client.
type Principal struct {
	Name       string
	topics     []string
	delivery   []Delivery
	maxStreams int
	anonymous  bool
	// declareTables: may declare tables (CREATE TABLE through Flight SQL).
	declareTables bool
	// admin: may see and reset every principal's writers and transactions.
	admin bool
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
