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
// KIP-768 has Kafka's clients do, and keeps one for every authentication.
// Once refreshFactor of its lifetime has passed, run fetches the next one in
// the background (retrying with backoff while the endpoint fails), so the
// current token keeps serving authentications meanwhile and an endpoint
// outage of up to a fifth of the lifetime costs nothing; an authentication
// that finds no usable token fetches one itself. The client secret is read
// again at every fetch, so it may rotate too. Safe for concurrent use.
type oidcTokens struct {
	url      string
	clientID string
	scopes   []string
	secret   *secret.Source
	c        *credentials // logging, clock, failures
	http     *http.Client
	fetchedC chan struct{} // a token was stored: run recomputes its wait

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
		http:     &http.Client{Timeout: credentialTimeout},
		fetchedC: make(chan struct{}, 1),
	}
}

// token is the token to authenticate with now: the current one until
// refreshFactor of its lifetime has passed, else a new one. When the
// endpoint fails, a current token that has not expired is still used.
func (o *oidcTokens) token(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.c.now()
	if o.tok != "" && now.Before(o.refreshAt) {
		return o.tok, nil
	}
	// Under the lock: concurrent authentications wait for one fetch.
	tok, expires, err := o.fetch(ctx, now)
	if err != nil {
		if o.usableLocked(now) {
			o.c.log.Warn().Err(err).Time("expires", o.expires).
				Msg("could not refresh the OAUTHBEARER token; authenticating with the current one until it expires")
			return o.tok, nil
		}
		return "", o.c.unavailable(err, "")
	}
	o.storeLocked(tok, expires, now)
	return tok, nil
}

// usableLocked reports a current token that has not expired.
func (o *oidcTokens) usableLocked(now time.Time) bool {
	return o.tok != "" && now.Before(o.expires)
}

// fetch asks the endpoint for a token; expires is on the credentials'
// clock, zero when neither expires_in nor a JWT exp says.
func (o *oidcTokens) fetch(ctx context.Context, now time.Time) (tok string, expires time.Time, err error) {
	clientSecret, err := o.c.read(o.secret)
	if err != nil {
		return "", time.Time{}, err
	}
	cc := clientcredentials.Config{ClientID: o.clientID, ClientSecret: clientSecret, TokenURL: o.url, Scopes: o.scopes}
	ctx, cancel := context.WithTimeout(ctx, credentialTimeout)
	defer cancel()
	t, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, o.http))
	if err == nil && t.AccessToken == "" {
		err = errors.New("the response has no access_token")
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fetching a token from %s (kafka.sasl.token_endpoint_url, client_id %q): %w", o.url, o.clientID, err)
	}
	switch {
	case !t.Expiry.IsZero(): // from expires_in, moved onto the credentials' clock (tests set it)
		expires = now.Add(time.Until(t.Expiry))
	default: // no expires_in: the JWT's exp, if it is one
		if jc := parseJWT(t.AccessToken); jc.ok {
			expires = jc.expires
		}
	}
	return t.AccessToken, expires, nil
}

// storeLocked makes tok the current token.
func (o *oidcTokens) storeLocked(tok string, expires, now time.Time) {
	o.fetches++
	o.tok, o.expires, o.refreshAt = tok, expires, now
	if left := expires.Sub(now); !expires.IsZero() && left > 0 {
		o.refreshAt = now.Add(time.Duration(float64(left) * refreshFactor))
	}
	o.c.log.Info().Str("endpoint", o.url).Str("client_id", o.clientID).Time("expires", expires).Time("refresh_at", o.refreshAt).
		Int("fetched", o.fetches).Msg("fetched an OAUTHBEARER token")
	select {
	case o.fetchedC <- struct{}{}:
	default:
	}
}

// refresh fetches the next token if the current one is due, without
// holding up authentications, which use the current one meanwhile.
func (o *oidcTokens) refresh(ctx context.Context) error {
	o.mu.Lock()
	now := o.c.now()
	due := o.tok != "" && !o.expires.IsZero() && !now.Before(o.refreshAt)
	o.mu.Unlock()
	if !due {
		return nil
	}
	tok, expires, err := o.fetch(ctx, now)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		if o.usableLocked(o.c.now()) {
			o.c.log.Warn().Err(err).Time("expires", o.expires).Msg("could not refresh the OAUTHBEARER token ahead of its expiry; retrying")
		}
		return err
	}
	if o.c.now().Before(o.refreshAt) { // an authentication fetched one meanwhile
		return nil
	}
	o.storeLocked(tok, expires, now)
	return nil
}

// run refreshes the token in the background until ctx ends: at
// refreshFactor of each token's lifetime, retrying every 1, 2, 4 ... 30 s
// while the endpoint fails. Before the first authentication has fetched a
// token, and for tokens of unknown lifetime, it waits.
func (o *oidcTokens) run(ctx context.Context) {
	const maxBackoff = 30 * time.Second
	backoff := time.Second
	for {
		o.mu.Lock()
		wait := time.Duration(-1) // until a token is stored
		if o.tok != "" && !o.expires.IsZero() {
			wait = max(o.refreshAt.Sub(o.c.now()), 0)
		}
		o.mu.Unlock()
		var timer *time.Timer
		var due <-chan time.Time // nil: no timer
		if wait >= 0 {
			timer = time.NewTimer(wait)
			due = timer.C
		}
		woke := false
		select {
		case <-ctx.Done():
		case <-o.fetchedC:
		case <-due:
			woke = true
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if !woke {
			continue
		}
		if err := o.refresh(ctx); err != nil {
			select {
			case <-ctx.Done():
				return
			case <-o.fetchedC: // an authentication fetched one
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = time.Second
	}
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
