package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/flightsink/flightsink/internal/secret"
)

// AuthError is a failed SASL authentication to Kafka. Refused means a
// broker answered and refused the credentials; otherwise flightsink could
// not obtain them (a secret file, the token endpoint, the AWS credential
// chain). Both may pass without a restart: credentials are resolved again
// at every authentication, so renewing them is enough.
type AuthError struct {
	// Mechanism is kafka.sasl.mechanism, upper case.
	Mechanism string
	// Refused is true when a broker refused the credentials.
	Refused bool
	// Detail is what flightsink knows about the credentials it sent (where
	// they come from, when a token expires), never the secret itself.
	Detail string
	// Err is kgo's error, or the credential source's.
	Err error
}

func (e *AuthError) Error() string {
	var b strings.Builder
	if e.Refused {
		fmt.Fprintf(&b, "Kafka refused authentication (SASL %s): %s", e.Mechanism, brokerRefusal(e.Err))
	} else {
		fmt.Fprintf(&b, "Kafka credentials unavailable (SASL %s): %v", e.Mechanism, e.Err)
	}
	if e.Detail != "" {
		b.WriteString("; ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Is makes every AuthError match ErrAuthFailed.
func (e *AuthError) Is(target error) bool { return target == ErrAuthFailed }

// Unwrap is the underlying error.
func (e *AuthError) Unwrap() error { return e.Err }

// brokerRefusal is what the broker said, without kgo's repetition: the
// OAUTHBEARER status ("invalid_token") or the broker's message, then the
// Kafka error code.
func brokerRefusal(err error) string {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return err.Error()
	}
	msg := err.Error()
	if i := strings.Index(msg, ke.Error()); i >= 0 {
		msg = strings.TrimSpace(strings.TrimPrefix(msg[i+len(ke.Error()):], ":"))
	} else {
		msg = ""
	}
	// RFC 7628 3.2.2: an OAUTHBEARER failure is a JSON object with a status.
	var failure struct {
		Status string `json:"status"`
		Scope  string `json:"scope"`
	}
	if json.Unmarshal([]byte(msg), &failure) == nil && failure.Status != "" {
		msg = failure.Status
		if failure.Scope != "" {
			msg += " (scope required: " + failure.Scope + ")"
		}
	}
	if msg == "" {
		return ke.Message + " (" + strings.TrimSuffix(ke.Description, ".") + ")"
	}
	return msg + " (" + ke.Message + ")"
}

// isAuthFailure reports an error of a failed authentication: a broker's
// refusal (SASL_AUTHENTICATION_FAILED, or a mechanism the listener does not
// offer) or a credential source's failure.
func isAuthFailure(err error) bool {
	return errors.Is(err, ErrAuthFailed) || errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.IllegalSaslState)
}

// credentialTimeout bounds one fetch of credentials from elsewhere (the
// token endpoint, the AWS credential chain): kgo authenticates with its
// client's context, which has no deadline.
const credentialTimeout = 30 * time.Second

// credentials resolves kafka.sasl's credentials at every authentication and
// re-authentication, and remembers the last failure so that errors can name
// it (kgo retries a produce whose connection cannot authenticate, so the
// stream only sees its records time out).
type credentials struct {
	cfg  SASLConfig
	mech string
	log  zerolog.Logger
	now  func() time.Time

	password *secret.Source // PLAIN, SCRAM
	token    *secret.Source // OAUTHBEARER, kept fresh by someone else
	oidc     *oidcTokens    // OAUTHBEARER, fetched from the token endpoint
	aws      *awsCredentials

	wg sync.WaitGroup // background work (the OIDC refresher) started by start

	mu       sync.Mutex
	tok      string    // the OAUTHBEARER token last read from token
	tokClaim jwtClaims // its claims, when it is a JWT
	warned   int       // warnings logged about tok: 1 expires soon, 2 expired
	failAt   time.Time // when an authentication last failed
	failErr  error
}

// newCredentials validates kafka.sasl and prepares its credential sources;
// nil without a mechanism. brokers are the seed brokers (AWS_MSK_IAM takes
// the default region from their names).
func newCredentials(cfg SASLConfig, brokers []string, log zerolog.Logger) (*credentials, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	mech := strings.ToUpper(cfg.Mechanism)
	if mech == "" {
		return nil, nil
	}
	c := &credentials{cfg: cfg, mech: mech, log: log.With().Str("component", "kafka-credentials").Logger(), now: time.Now}
	srcs := map[string]*secret.Source{}
	for _, n := range cfg.secrets() {
		src, err := secret.NewSource(n.s, n.what)
		if err != nil {
			return nil, err
		}
		srcs[n.what] = src
	}
	switch mech {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		c.password = srcs["kafka.sasl.password"]
	case "OAUTHBEARER":
		if cfg.TokenEndpointURL != "" {
			c.oidc = newOIDCTokens(cfg, srcs["kafka.sasl.client_secret"], c)
		} else {
			c.token = srcs["kafka.sasl.token"]
		}
	case "AWS_MSK_IAM":
		var err error
		if c.aws, err = newAWSCredentials(srcs, brokers, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// start runs the background work of the credentials (refreshing OIDC
// tokens ahead of their expiry) until ctx ends; wait waits for it to end.
func (c *credentials) start(ctx context.Context) {
	if c == nil || c.oidc == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.oidc.run(ctx)
	}()
}

// wait waits for what start started to end (after its context ended).
func (c *credentials) wait() {
	if c != nil {
		c.wg.Wait()
	}
}

// mechanism is the franz-go SASL mechanism, calling back into c at every
// authentication.
func (c *credentials) mechanism() sasl.Mechanism {
	switch c.mech {
	case "PLAIN":
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			pw, err := c.read(c.password)
			return plain.Auth{User: c.cfg.Username, Pass: pw}, err
		})
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		fn := func(context.Context) (scram.Auth, error) {
			pw, err := c.read(c.password)
			return scram.Auth{User: c.cfg.Username, Pass: pw}, err
		}
		if c.mech == "SCRAM-SHA-256" {
			return scram.Sha256(fn)
		}
		return scram.Sha512(fn)
	case "OAUTHBEARER":
		return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			tok, err := c.oauthToken(ctx)
			return oauth.Auth{Token: tok, Extensions: c.cfg.Extensions}, err
		})
	case "AWS_MSK_IAM":
		return aws.ManagedStreamingIAM(c.aws.auth)
	}
	panic("kafka: unknown SASL mechanism " + c.mech) // validate refused it
}

// read is a secret's current value. A value that changed is logged (never
// the value); a file that cannot be read now but was before keeps its last
// value, with a warning.
func (c *credentials) read(src *secret.Source) (string, error) {
	v, changed, err := src.Value()
	if errors.Is(err, secret.ErrStale) {
		c.log.Warn().Err(err).Str("setting", src.Name()).Msg("Kafka credential file unreadable; authenticating with the last value read " +
			"(replace secret files atomically, by rename, as Kubernetes and Vault agents do)")
		err = nil
	}
	if err != nil {
		return "", c.unavailable(err, "")
	}
	if changed {
		c.log.Info().Str("setting", src.Name()).Str("source", src.Secret().Where()).
			Msg("Kafka credential changed; new connections and re-authentications use the new value")
	}
	return v, nil
}

// unavailable is an AuthError for credentials flightsink could not obtain,
// remembered as the last failure.
func (c *credentials) unavailable(err error, detail string) error {
	ae := &AuthError{Mechanism: c.mech, Err: err, Detail: detail}
	c.noteFailure(ae)
	return ae
}

// oauthToken is the OAUTHBEARER token to authenticate with now.
func (c *credentials) oauthToken(ctx context.Context) (string, error) {
	if c.oidc != nil {
		return c.oidc.token(ctx)
	}
	tok, err := c.read(c.token)
	if err != nil {
		return "", err
	}
	c.checkToken(tok)
	return tok, nil
}

// jwtClaims is what flightsink reads of a JWT it sends, without verifying
// it (the broker does): when it expires, for warnings and errors.
type jwtClaims struct {
	ok       bool
	subject  string
	issued   time.Time
	expires  time.Time
	lifetime time.Duration // expires - issued, 0 when either is missing
}

// parseJWT reads a token's claims; ok is false for a token that is not a
// JWT with an exp claim (an opaque token: nothing to warn about).
func parseJWT(tok string) jwtClaims {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		return jwtClaims{}
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return jwtClaims{}
	}
	jc := jwtClaims{ok: true, expires: exp.Time}
	jc.subject, _ = claims.GetSubject()
	if iat, err := claims.GetIssuedAt(); err == nil && iat != nil && iat.Before(exp.Time) {
		jc.issued, jc.lifetime = iat.Time, exp.Sub(iat.Time)
	}
	return jc
}

// soonWindow is how long before its expiry a token "expires soon": a
// tenth of its lifetime (a renewer typically replaces it at 80%), at most
// five minutes; one minute when the lifetime is unknown.
func (jc jwtClaims) soonWindow() time.Duration {
	if jc.lifetime <= 0 {
		return time.Minute
	}
	return min(jc.lifetime/10, 5*time.Minute)
}

// checkToken logs, once per token, that a token was read, and warns once
// when it expires soon and once when it expired: the broker refuses an
// expired token, so the warning comes before the refusals.
func (c *credentials) checkToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tok != c.tok {
		c.tok, c.tokClaim, c.warned = tok, parseJWT(tok), 0
		if c.tokClaim.ok {
			c.log.Info().Str("source", c.token.Secret().Where()).Str("sub", c.tokClaim.subject).
				Time("expires", c.tokClaim.expires).Msg("OAUTHBEARER token read (kafka.sasl.token)")
		}
	}
	if !c.tokClaim.ok {
		return
	}
	left := c.tokClaim.expires.Sub(c.now())
	switch {
	case left <= 0 && c.warned < 2:
		c.warned = 2
		c.log.Warn().Str("source", c.token.Secret().Where()).Time("expired", c.tokClaim.expires).
			Msgf("the OAUTHBEARER token of kafka.sasl.token expired %v ago and was not replaced; Kafka will refuse it", (-left).Round(time.Second))
	case left > 0 && left < c.tokClaim.soonWindow() && c.warned < 1:
		c.warned = 1
		c.log.Warn().Str("source", c.token.Secret().Where()).Time("expires", c.tokClaim.expires).
			Msgf("the OAUTHBEARER token of kafka.sasl.token expires in %v and was not replaced yet", left.Round(time.Second))
	}
}

// detail says what flightsink knows about the credentials it sends, for
// an AuthError: where they come from and, for a token, when it expires.
func (c *credentials) detail() string {
	switch {
	case c.password != nil:
		return fmt.Sprintf("user %q, password from %s (kafka.sasl.password)", c.cfg.Username, c.password.Secret().Where())
	case c.token != nil:
		c.mu.Lock()
		jc := c.tokClaim
		c.mu.Unlock()
		where := "the token from " + c.token.Secret().Where() + " (kafka.sasl.token"
		if !jc.ok {
			return where + ") is not a JWT with an exp claim; check that it is the one Kafka expects"
		}
		if jc.subject != "" {
			where += fmt.Sprintf(", sub %q", jc.subject)
		}
		where += ")"
		left := jc.expires.Sub(c.now())
		switch {
		case left <= 0:
			return fmt.Sprintf("%s expired at %s (%v ago) and was not replaced since", where,
				jc.expires.UTC().Format(time.RFC3339), (-left).Round(time.Second))
		case left < jc.soonWindow():
			return fmt.Sprintf("%s expires at %s (in %v) and was not replaced yet", where,
				jc.expires.UTC().Format(time.RFC3339), left.Round(time.Second))
		}
		return fmt.Sprintf("%s is valid until %s; check its signature, issuer, audience and scope against the broker's settings",
			where, jc.expires.UTC().Format(time.RFC3339))
	case c.oidc != nil:
		return c.oidc.detail()
	case c.aws != nil:
		return c.aws.detail()
	}
	return ""
}

// refusal turns an authentication failure into an *AuthError naming its
// cause; nil when err is not one.
func (c *credentials) refusal(err error) *AuthError {
	if c == nil || err == nil || !isAuthFailure(err) {
		return nil
	}
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae
	}
	ae = &AuthError{Mechanism: c.mech, Refused: true, Detail: c.detail(), Err: err}
	c.noteFailure(ae)
	return ae
}

// noteFailure remembers err as the last authentication failure.
func (c *credentials) noteFailure(err error) {
	c.mu.Lock()
	c.failAt, c.failErr = c.now(), err
	c.mu.Unlock()
}

// noteKgoError is given every error kgo logs: an authentication failure is
// remembered (kgo retries a produce whose connection cannot authenticate
// and logs why; the records only time out).
func (c *credentials) noteKgoError(err error) {
	if c != nil && isAuthFailure(err) {
		_ = c.refusal(err) // remembered; kgo goes on retrying
	}
}

// failureSince is the last authentication failure if it happened at or
// after t, else nil.
func (c *credentials) failureSince(t time.Time) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failErr == nil || c.failAt.Before(t) {
		return nil
	}
	return c.failErr
}
