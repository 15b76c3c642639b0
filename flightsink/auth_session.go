package flightsink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/flightsink/flightsink/internal/secret"
)

// sessionPrefix starts every session token (format version 1), so a
// bearer token that is not a static one is verified only when it can be a
// session.
const sessionPrefix = "fs1."

// minSessionKeyLen is the shortest accepted session key: 32 characters,
// HMAC-SHA256's block of security.
const minSessionKeyLen = 32

// sessionClaims is what a session token carries: who logged in, as which
// principal, until when (Unix seconds). Anyone holding the token can read
// them; only a holder of a session key can make or change them.
type sessionClaims struct {
	User      string `json:"u"`
	Principal string `json:"p"`
	Expires   int64  `json:"exp"`
}

// sessionSigner signs session tokens with the first key and verifies them
// with any key: "fs1.<base64url claims>.<base64url HMAC-SHA256>". Replicas
// that share the keys accept each other's tokens, across restarts.
type sessionSigner struct {
	keys [][]byte
}

// newSessionSigner resolves auth.session_keys; without any it uses a
// random key of this process.
func newSessionSigner(keys []secret.Secret) (*sessionSigner, error) {
	s := &sessionSigner{}
	for i, k := range keys {
		setting := fmt.Sprintf("auth.session_keys[%d]", i)
		v, err := k.Resolve(setting)
		if err != nil {
			return nil, err
		}
		if len(v) < minSessionKeyLen {
			return nil, fmt.Errorf("%s: at least %d characters, please (e.g. openssl rand -hex 32)", setting, minSessionKeyLen)
		}
		s.keys = append(s.keys, []byte(v))
	}
	if len(s.keys) == 0 {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		s.keys = [][]byte{key}
	}
	return s, nil
}

func (s *sessionSigner) mac(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sessionPrefix + payload))
	return h.Sum(nil)
}

// sign makes a token of the claims with the first key.
func (s *sessionSigner) sign(c sessionClaims) string {
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return sessionPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(s.keys[0], payload))
}

// verify returns the claims of a token signed by any of the keys; it does
// not check the expiry.
func (s *sessionSigner) verify(token string) (sessionClaims, bool) {
	payload, sig, ok := strings.Cut(strings.TrimPrefix(token, sessionPrefix), ".")
	if !ok {
		return sessionClaims{}, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return sessionClaims{}, false
	}
	valid := false
	for _, k := range s.keys { // every key, no early exit
		if hmac.Equal(mac, s.mac(k, payload)) {
			valid = true
		}
	}
	if !valid {
		return sessionClaims{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var c sessionClaims
	if err != nil || json.Unmarshal(b, &c) != nil {
		return sessionClaims{}, false
	}
	return c, true
}
