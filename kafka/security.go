package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

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
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or
	// AWS_MSK_IAM; empty for none.
	Mechanism string        `yaml:"mechanism"`
	Username  string        `yaml:"username"`
	Password  secret.Secret `yaml:"password"`
	// Token is the OAUTHBEARER token.
	Token secret.Secret `yaml:"token"`
	// AWS credentials for AWS_MSK_IAM.
	AWSAccessKey    secret.Secret `yaml:"aws_access_key"`
	AWSSecretKey    secret.Secret `yaml:"aws_secret_key"`
	AWSSessionToken secret.Secret `yaml:"aws_session_token"`
}

// securityOpts turns the TLS and SASL settings into kgo options; errors
// name the setting.
func (c *Config) securityOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if c.TLS.Enabled {
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
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	s := c.SASL
	password := func() (string, error) { return s.Password.Resolve("kafka.sasl.password") }
	switch strings.ToUpper(s.Mechanism) {
	case "":
		return opts, nil
	case "PLAIN":
		pw, err := password()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: pw}.AsMechanism()))
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		pw, err := password()
		if err != nil {
			return nil, err
		}
		a := scram.Auth{User: s.Username, Pass: pw}
		if strings.HasSuffix(strings.ToUpper(s.Mechanism), "512") {
			opts = append(opts, kgo.SASL(a.AsSha512Mechanism()))
		} else {
			opts = append(opts, kgo.SASL(a.AsSha256Mechanism()))
		}
	case "OAUTHBEARER":
		tok, err := s.Token.Resolve("kafka.sasl.token")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(oauth.Auth{Token: tok}.AsMechanism()))
	case "AWS_MSK_IAM":
		ak, err := s.AWSAccessKey.Resolve("kafka.sasl.aws_access_key")
		if err != nil {
			return nil, err
		}
		sk, err := s.AWSSecretKey.Resolve("kafka.sasl.aws_secret_key")
		if err != nil {
			return nil, err
		}
		var st string
		if s.AWSSessionToken.IsSet() {
			if st, err = s.AWSSessionToken.Resolve("kafka.sasl.aws_session_token"); err != nil {
				return nil, err
			}
		}
		auth := aws.Auth{AccessKey: ak, SecretKey: sk, SessionToken: st}
		opts = append(opts, kgo.SASL(aws.ManagedStreamingIAM(func(context.Context) (aws.Auth, error) { return auth, nil })))
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM", s.Mechanism)
	}
	return opts, nil
}
