package kafka

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/sasl/aws"

	"github.com/flightsink/flightsink/internal/secret"
)

// awsExpiryWindow is how long before they expire temporary AWS credentials
// are renewed: a connection is never signed with credentials about to end.
const awsExpiryWindow = 5 * time.Minute

// awsCredentials are AWS_MSK_IAM's credentials: static keys, read again
// when their secret changed, or, without keys, the AWS SDK's default chain
// (environment, shared config and credentials files with AWS_PROFILE, web
// identity / IRSA, ECS and EC2 instance roles), whose cache renews
// temporary credentials before they expire.
type awsCredentials struct {
	c                    *credentials
	key, secret, session *secret.Source
	chain                awssdk.CredentialsProvider

	mu   sync.Mutex
	last awssdk.Credentials // the chain's last answer, for detail (never its secrets)
}

func newAWSCredentials(srcs map[string]*secret.Source, brokers []string, c *credentials) (*awsCredentials, error) {
	a := &awsCredentials{c: c, key: srcs["kafka.sasl.aws_access_key"], secret: srcs["kafka.sasl.aws_secret_key"],
		session: srcs["kafka.sasl.aws_session_token"]}
	if a.key != nil {
		return a, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithCredentialsCacheOptions(func(o *awssdk.CredentialsCacheOptions) { o.ExpiryWindow = awsExpiryWindow }),
	}
	if region := mskRegion(brokers); region != "" {
		opts = append(opts, awsconfig.WithDefaultRegion(region))
	}
	ctx, cancel := context.WithTimeout(context.Background(), credentialTimeout)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka.sasl: AWS_MSK_IAM without aws_access_key uses the AWS SDK's default credential chain, whose configuration is invalid: %w", err)
	}
	if cfg.Credentials == nil {
		return nil, fmt.Errorf("kafka.sasl: AWS_MSK_IAM without aws_access_key: the AWS SDK found no credential provider")
	}
	a.chain = cfg.Credentials
	return a, nil
}

// mskRegexp matches an MSK broker name and captures its region, e.g.
// b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com.
var mskRegexp = regexp.MustCompile(`(?:^|\.)kafka(?:-serverless)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// mskRegion is the AWS region in the seed brokers' names, the default for
// the SDK (web identity needs one for STS) when the environment names none.
func mskRegion(brokers []string) string {
	for _, b := range brokers {
		host, _, err := net.SplitHostPort(b)
		if err != nil {
			host = b
		}
		if m := mskRegexp.FindStringSubmatch(host); m != nil {
			return m[1]
		}
	}
	return ""
}

// auth is franz-go's AWS_MSK_IAM callback: the credentials to sign this
// authentication with.
func (a *awsCredentials) auth(ctx context.Context) (aws.Auth, error) {
	if a.chain == nil {
		var au aws.Auth
		var err error
		if au.AccessKey, err = a.c.read(a.key); err != nil {
			return aws.Auth{}, err
		}
		if au.SecretKey, err = a.c.read(a.secret); err != nil {
			return aws.Auth{}, err
		}
		if a.session != nil {
			if au.SessionToken, err = a.c.read(a.session); err != nil {
				return aws.Auth{}, err
			}
		}
		return au, nil
	}
	ctx, cancel := context.WithTimeout(ctx, credentialTimeout)
	defer cancel()
	creds, err := a.chain.Retrieve(ctx)
	if err != nil {
		return aws.Auth{}, a.c.unavailable(fmt.Errorf("the AWS SDK's default credential chain (no kafka.sasl.aws_access_key): %w", err), "")
	}
	a.mu.Lock()
	a.last = creds
	a.mu.Unlock()
	return aws.Auth{AccessKey: creds.AccessKeyID, SecretKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}, nil
}

// detail names the credentials' source for an AuthError.
func (a *awsCredentials) detail() string {
	if a.chain == nil {
		return "AWS keys from " + a.key.Secret().Where() + " (kafka.sasl.aws_access_key)"
	}
	a.mu.Lock()
	last := a.last
	a.mu.Unlock()
	d := "AWS credentials from the SDK's default chain"
	if last.Source != "" {
		d += " (provider " + last.Source + ")"
	}
	if last.CanExpire {
		d += ", valid until " + last.Expires.UTC().Format(time.RFC3339)
	}
	return d + "; check the IAM policy of this identity for kafka-cluster:Connect and the topic actions"
}
