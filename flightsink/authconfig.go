package flightsink

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/internal/secret"
	"github.com/flightsink/flightsink/kafka/sinkapi"
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
	// DeclareTables lets the principal declare tables (Flight SQL CREATE
	// TABLE) on the topics it may write. The anonymous principal may.
	DeclareTables bool `yaml:"declare_tables"`
	// Admin lets the principal see and reset every principal's named
	// writers and list and abort every transaction of the server (the
	// writers and transactions actions); others see only their own writers
	// and their writers' transactions. The anonymous principal may.
	Admin bool `yaml:"admin"`
}

// Client certificate principal mappings (AuthConfig.ClientCertPrincipal).
const (
	CertPrincipalSubjectCN = "subject_cn"
	CertPrincipalSANDNS    = "san_dns"
)

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
		if pc.Name == "" || !sinkapi.ValidIDPart(pc.Name) {
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
		principals[pc.Name] = &Principal{Name: pc.Name, topics: pc.Topics, delivery: pc.Delivery, maxStreams: pc.MaxStreams,
			declareTables: pc.DeclareTables, admin: pc.Admin}
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
