package kafka

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/flightsink/flightsink/internal/secret"
)

// refreshFactor is the share of a token's lifetime after which a new one
// is fetched, as Kafka's own clients do (sasl.login.refresh.window.factor,
// 0.8 by default): a token is never sent close to its expiry, and the
// endpoint may be down for the remaining fifth without harm.
const refreshFactor = 0.8

// oidcTokens fetches OAUTHBEARER tokens from kafka.sasl.token_endpoint_url
// with the OAuth 2 client-credentials grant (golang.org/x/oauth2), as
// KIP-768 has Kafka's clients do, and keeps one for every authentication
// until refreshFactor of its lifetime has passed. The client secret is read
// again at every fetch, so it may rotate too. Safe for concurrent use.
type oidcTokens struct {
	url      string
	clientID string
	scopes   []string
	secret   *secret.Source
	c        *credentials // logging, clock, failures
	http     *http.Client

	mu        sync.Mutex
	tok       string
	expires   time.Time // zero: unknown, so every authentication fetches
	refreshAt time.Time
	fetches   int // tokens fetched so far
}

func newOIDCTokens(cfg SASLConfig, clientSecret *secret.Source, c *credentials) *oidcTokens {
	return &oidcTokens{
		url: cfg.TokenEndpointURL, clientID: cfg.ClientID, scopes: strings.Fields(cfg.Scope),
		secret: clientSecret, c: c,
		http: &http.Client{Timeout: credentialTimeout},
	}
}

// token is the token to authenticate with now: the cached one, or a new
// one once refreshFactor of the cached one's lifetime has passed. When the
// endpoint fails, a cached token that has not expired is still used.
func (o *oidcTokens) token(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.c.now()
	if o.tok != "" && now.Before(o.refreshAt) {
		return o.tok, nil
	}
	clientSecret, err := o.c.read(o.secret)
	if err != nil {
		return "", err
	}
	cc := clientcredentials.Config{ClientID: o.clientID, ClientSecret: clientSecret, TokenURL: o.url, Scopes: o.scopes}
	ctx, cancel := context.WithTimeout(ctx, credentialTimeout)
	defer cancel()
	t, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, o.http))
	if err == nil && t.AccessToken == "" {
		err = errors.New("the response has no access_token")
	}
	if err != nil {
		err = fmt.Errorf("fetching a token from %s (kafka.sasl.token_endpoint_url, client_id %q): %w", o.url, o.clientID, err)
		if o.tok != "" && now.Before(o.expires) {
			o.c.log.Warn().Err(err).Time("expires", o.expires).
				Msg("could not refresh the OAUTHBEARER token; authenticating with the current one until it expires")
			return o.tok, nil
		}
		return "", o.c.unavailable(err, "")
	}
	o.fetches++
	var expires time.Time
	switch {
	case !t.Expiry.IsZero(): // from expires_in, moved onto the credentials' clock (tests set it)
		expires = now.Add(time.Until(t.Expiry))
	default: // no expires_in: the JWT's exp, if it is one
		if jc := parseJWT(t.AccessToken); jc.ok {
			expires = jc.expires
		}
	}
	o.tok, o.expires, o.refreshAt = t.AccessToken, expires, now
	if left := expires.Sub(now); !expires.IsZero() && left > 0 {
		o.refreshAt = now.Add(time.Duration(float64(left) * refreshFactor))
	}
	o.c.log.Info().Str("endpoint", o.url).Str("client_id", o.clientID).Time("expires", expires).Time("refresh_at", o.refreshAt).
		Int("fetched", o.fetches).Msg("fetched an OAUTHBEARER token")
	return o.tok, nil
}

// detail names the token's source for an AuthError.
func (o *oidcTokens) detail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := fmt.Sprintf("tokens from %s (kafka.sasl.token_endpoint_url) for client_id %q, %d fetched", o.url, o.clientID, o.fetches)
	if !o.expires.IsZero() {
		d += ", the current one valid until " + o.expires.UTC().Format(time.RFC3339)
	}
	return d + "; check that the broker trusts this issuer (its JWKS, expected issuer and audience, scope and sub claims)"
}

// fetched is how many tokens were fetched (tests).
func (o *oidcTokens) fetched() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches
}
