package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/internal/secret"
)

// TLSConfig is TLS to the brokers.
type TLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the brokers; empty uses the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `yaml:"server_name"`
}

// SASLConfig authenticates to the brokers with franz-go's own mechanisms.
// Credentials are resolved at every authentication and re-authentication
// (KIP-368), not once at start-up: a secret given as file: or env: is read
// again when it changed, OAuth tokens from a token endpoint are fetched
// again before they expire, and AWS credentials come from the AWS SDK's
// default chain when no keys are given (credentials.go).
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or
	// AWS_MSK_IAM; empty for none.
	Mechanism string `yaml:"mechanism"`
	// Username and Password are the PLAIN or SCRAM credentials.
	Username string        `yaml:"username"`
	Password secret.Secret `yaml:"password"`
	// Token is an OAUTHBEARER token that something else keeps fresh (a
	// sidecar, a refreshed Kubernetes secret, a Vault agent): as file: it
	// is read again whenever the file was replaced.
	Token secret.Secret `yaml:"token"`
	// TokenEndpointURL, ClientID, ClientSecret and Scope make flightsink
	// fetch OAUTHBEARER tokens itself with the OAuth 2 client-credentials
	// grant, as Kafka's own clients do (KIP-768:
	// sasl.oauthbearer.token.endpoint.url, ...client.id, ...client.secret,
	// sasl.oauthbearer.scope), and fetch a new one before it expires.
	TokenEndpointURL string        `yaml:"token_endpoint_url"`
	ClientID         string        `yaml:"client_id"`
	ClientSecret     secret.Secret `yaml:"client_secret"`
	// Scope is the space-separated scopes asked for; empty asks for none.
	Scope string `yaml:"scope"`
	// Extensions are OAUTHBEARER SASL extensions sent with the token
	// (KIP-342), e.g. Confluent Cloud's logicalCluster and identityPoolId.
	Extensions map[string]string `yaml:"extensions"`
	// AWS credentials for AWS_MSK_IAM. Without an access key, they come
	// from the AWS SDK's default chain (environment, shared config and
	// credentials files, web identity / IRSA, ECS and EC2 instance roles),
	// which renews temporary credentials itself.
	AWSAccessKey    secret.Secret `yaml:"aws_access_key"`
	AWSSecretKey    secret.Secret `yaml:"aws_secret_key"`
	AWSSessionToken secret.Secret `yaml:"aws_session_token"`
}

// mechanisms are the values kafka.sasl.mechanism takes.
const mechanisms = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM"

// tlsOpts turns the TLS settings into kgo options; errors name the setting.
func (c *Config) tlsOpts() ([]kgo.Opt, error) {
	if !c.TLS.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: no PEM certificate in %s", c.TLS.CAFile)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return nil, fmt.Errorf("kafka.tls.cert_file and kafka.tls.key_file: set both or neither")
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file / key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return []kgo.Opt{kgo.DialTLSConfig(tc)}, nil
}

// validate checks the SASL settings, naming the one at fault, and reads
// every secret once so that a missing one fails at start-up.
func (s *SASLConfig) validate() error {
	mech := strings.ToUpper(s.Mechanism)
	need := func(ok bool, format string, args ...any) error {
		if ok {
			return nil
		}
		return fmt.Errorf(format, args...)
	}
	unused := func(set bool, setting string) error {
		return need(!set, "kafka.sasl.%s: not used by mechanism %q; remove it", setting, s.Mechanism)
	}
	var errs []error
	userPass := mech == "PLAIN" || mech == "SCRAM-SHA-256" || mech == "SCRAM-SHA-512"
	oauth := mech == "OAUTHBEARER"
	msk := mech == "AWS_MSK_IAM"
	switch {
	case mech == "":
		if s.Username != "" || s.Password.IsSet() || s.Token.IsSet() || s.TokenEndpointURL != "" || s.AWSAccessKey.IsSet() {
			return fmt.Errorf("kafka.sasl.mechanism: credentials are set but no mechanism (one of %s)", mechanisms)
		}
		return nil
	case userPass:
		errs = append(errs, need(s.Username != "", "kafka.sasl.username: required by mechanism %s", mech))
		errs = append(errs, need(s.Password.IsSet(), "kafka.sasl.password: required by mechanism %s", mech))
	case oauth:
		errs = append(errs, need(s.Token.IsSet() != (s.TokenEndpointURL != ""),
			"kafka.sasl.token or kafka.sasl.token_endpoint_url: OAUTHBEARER needs exactly one (a token kept fresh by something else, or the OAuth client-credentials endpoint flightsink fetches tokens from)"))
		if s.TokenEndpointURL != "" {
			errs = append(errs, checkEndpoint(s.TokenEndpointURL))
			errs = append(errs, need(s.ClientID != "", "kafka.sasl.client_id: required with kafka.sasl.token_endpoint_url"))
			errs = append(errs, need(s.ClientSecret.IsSet(), "kafka.sasl.client_secret: required with kafka.sasl.token_endpoint_url"))
		}
		for k := range s.Extensions {
			errs = append(errs, need(validExtensionKey(k), "kafka.sasl.extensions: key %q must be letters only (RFC 7628), and not \"auth\"", k))
		}
	case msk:
		errs = append(errs, need(s.AWSAccessKey.IsSet() == s.AWSSecretKey.IsSet(),
			"kafka.sasl.aws_access_key and kafka.sasl.aws_secret_key: set both, or neither to use the AWS SDK's default credential chain"))
		errs = append(errs, need(!s.AWSSessionToken.IsSet() || s.AWSAccessKey.IsSet(),
			"kafka.sasl.aws_session_token: goes with kafka.sasl.aws_access_key and aws_secret_key; without keys the default chain supplies it"))
	default:
		return fmt.Errorf("kafka.sasl.mechanism: %q is not one of %s", s.Mechanism, mechanisms)
	}
	if !userPass {
		errs = append(errs, unused(s.Username != "", "username"), unused(s.Password.IsSet(), "password"))
	}
	if !oauth {
		errs = append(errs, unused(s.Token.IsSet(), "token"), unused(s.TokenEndpointURL != "", "token_endpoint_url"),
			unused(s.ClientID != "", "client_id"), unused(s.ClientSecret.IsSet(), "client_secret"),
			unused(s.Scope != "", "scope"), unused(len(s.Extensions) > 0, "extensions"))
	} else if s.TokenEndpointURL == "" {
		errs = append(errs, need(s.ClientID == "" && !s.ClientSecret.IsSet() && s.Scope == "",
			"kafka.sasl.client_id, client_secret, scope: only used with kafka.sasl.token_endpoint_url"))
	}
	if !msk {
		errs = append(errs, unused(s.AWSAccessKey.IsSet(), "aws_access_key"), unused(s.AWSSecretKey.IsSet(), "aws_secret_key"),
			unused(s.AWSSessionToken.IsSet(), "aws_session_token"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, sec := range s.secrets() {
		if _, err := sec.s.Resolve(sec.what); err != nil {
			return err
		}
	}
	return nil
}

// namedSecret is a secret setting and its name.
type namedSecret struct {
	s    secret.Secret
	what string
}

// secrets are the secret settings that are set.
func (s *SASLConfig) secrets() []namedSecret {
	var out []namedSecret
	for _, n := range []namedSecret{
		{s.Password, "kafka.sasl.password"}, {s.Token, "kafka.sasl.token"}, {s.ClientSecret, "kafka.sasl.client_secret"},
		{s.AWSAccessKey, "kafka.sasl.aws_access_key"}, {s.AWSSecretKey, "kafka.sasl.aws_secret_key"},
		{s.AWSSessionToken, "kafka.sasl.aws_session_token"},
	} {
		if n.s.IsSet() {
			out = append(out, n)
		}
	}
	return out
}

// checkEndpoint accepts an https URL, or http to a loopback address (a
// client secret must not cross a network in clear text).
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("kafka.sasl.token_endpoint_url: %q is not an http(s) URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("kafka.sasl.token_endpoint_url: %q sends the client secret in clear text; use https (http only to a loopback address)", raw)
	}
	return fmt.Errorf("kafka.sasl.token_endpoint_url: %q is not an http(s) URL", raw)
}

// validExtensionKey is RFC 7628's key = 1*(ALPHA), "auth" being reserved.
func validExtensionKey(k string) bool {
	if k == "" || k == "auth" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
