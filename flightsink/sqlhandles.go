package flightsink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// Prepared statement handles are self-contained and signed, so any replica
// can execute a statement another prepared, across restarts: the
// statement's text, the principal that prepared it, the record options its
// headers carried (Java ADBC 0.20 sends the execution without the
// connection's headers), and when it was prepared.
//
// A handle expires preparedTTL after it was prepared, and sooner when it
// goes unused for flight.prepared_statement_idle_timeout. Each replica
// remembers when it last saw a handle used (a bounded table); a replica
// that never saw it counts its idleness from when it was prepared. Closing
// a statement ends its handle on the replica that closed it; other
// replicas let it expire.

// preparedTTL is how long a prepared statement handle stays valid at most.
const preparedTTL = 24 * time.Hour

// maxTrackedHandles bounds a replica's table of handle uses: when it is
// full, the entries already idle are dropped, then arbitrary ones down to
// seven eighths (their handles then count idleness from when they were
// prepared).
const maxTrackedHandles = 1 << 16

// handlePrefix starts every handle (format version 1).
const handlePrefix = "fsq1."

// stmtClaims is what a handle carries; anyone holding it can read it,
// only a holder of the key can make or change it.
type stmtClaims struct {
	Principal string            `json:"p"`
	SQL       string            `json:"q"`
	Options   map[string]string `json:"o,omitempty"`
	Issued    int64             `json:"t"` // Unix seconds
	// Nonce makes every handle unique: two tasks preparing the same
	// statement in the same second (Spark does) must not share one, or
	// closing one would end the other.
	Nonce string `json:"n,omitempty"`
}

// handleSigner signs handles with the first key and verifies with any.
// With auth configured its keys are auth.session_keys (or the process's
// random session key); without auth every client is the anonymous
// principal and a handle grants nothing a client could not ask for
// directly (authorization is checked again when it runs), so a fixed key
// keeps handles valid on every replica.
type handleSigner struct {
	keys [][]byte
	now  func() time.Time
	idle time.Duration // flight.prepared_statement_idle_timeout

	mu   sync.Mutex
	uses map[[sha256.Size]byte]handleUse
}

// handleUse is what a replica knows of a handle: when it was last used,
// and whether it was closed.
type handleUse struct {
	last   time.Time
	closed bool
}

func newHandleSigner(a *authenticator, idle time.Duration) *handleSigner {
	h := &handleSigner{now: time.Now, idle: idle, uses: map[[sha256.Size]byte]handleUse{}}
	if a != nil && a.sessions != nil {
		h.keys = a.sessions.keys
		if a.now != nil {
			h.now = a.now
		}
	} else {
		k := sha256.Sum256([]byte("flightsink prepared statements without auth"))
		h.keys = [][]byte{k[:]}
	}
	return h
}

func (h *handleSigner) mac(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(handlePrefix + payload))
	return m.Sum(nil)
}

func (h *handleSigner) sign(c stmtClaims) []byte {
	c.Issued = h.now().Unix()
	var nonce [9]byte
	_, _ = rand.Read(nonce[:])
	c.Nonce = base64.RawURLEncoding.EncodeToString(nonce[:])
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return []byte(handlePrefix + payload + "." + base64.RawURLEncoding.EncodeToString(h.mac(h.keys[0], payload)))
}

// open verifies a handle for principal p: signed by a key, made by the
// same principal, not closed here, not expired (by age or idleness); and
// records the use.
func (h *handleSigner) open(handle []byte, p *Principal) (stmtClaims, error) {
	c, err := h.verify(handle)
	if err != nil {
		return stmtClaims{}, err
	}
	if c.Principal != p.Name {
		return stmtClaims{}, newError(codes.PermissionDenied, ReasonForbidden,
			"prepared statement belongs to another principal; prepare it as %q", p.Name)
	}
	now := h.now()
	issued := time.Unix(c.Issued, 0)
	if age := now.Sub(issued); age > preparedTTL {
		return stmtClaims{}, newError(codes.InvalidArgument, ReasonBadRequest,
			"prepared statement expired (prepared %v ago; handles last %v); prepare it again", age.Round(time.Second), preparedTTL)
	}
	key := sha256.Sum256(handle)
	h.mu.Lock()
	defer h.mu.Unlock()
	use, seen := h.uses[key]
	if use.closed {
		return stmtClaims{}, newError(codes.InvalidArgument, ReasonBadRequest, "prepared statement was closed; prepare it again")
	}
	last := issued
	if seen && use.last.After(last) {
		last = use.last
	}
	if idle := now.Sub(last); h.idle > 0 && idle > h.idle {
		return stmtClaims{}, newError(codes.InvalidArgument, ReasonBadRequest,
			"prepared statement expired: unused for %v (flight.prepared_statement_idle_timeout is %v); prepare it again",
			idle.Round(time.Second), h.idle)
	}
	h.remember(key, handleUse{last: now}, now)
	return c, nil
}

// close ends a handle on this replica. A handle that is not this server's
// is ignored: closing is a courtesy, it grants nothing.
func (h *handleSigner) close(handle []byte) {
	if _, err := h.verify(handle); err != nil {
		return
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remember(sha256.Sum256(handle), handleUse{last: now, closed: true}, now)
}

// remember records a use; the caller holds h.mu. The table stays within
// maxTrackedHandles: handles past their lifetime go first.
func (h *handleSigner) remember(key [sha256.Size]byte, use handleUse, now time.Time) {
	if _, ok := h.uses[key]; !ok && len(h.uses) >= maxTrackedHandles {
		for k, u := range h.uses {
			if now.Sub(u.last) > preparedTTL || (h.idle > 0 && now.Sub(u.last) > h.idle) {
				delete(h.uses, k)
			}
		}
		for k := range h.uses { // an eighth at once: no sweep on every use
			if len(h.uses) < maxTrackedHandles*7/8 {
				break
			}
			delete(h.uses, k)
		}
	}
	h.uses[key] = use
}

// verify checks a handle's signature and reads its claims.
func (h *handleSigner) verify(handle []byte) (stmtClaims, error) {
	bad := newError(codes.InvalidArgument, ReasonBadRequest, "prepared statement handle is not one this server made; prepare the statement again")
	s := string(handle)
	if len(s) < len(handlePrefix) || s[:len(handlePrefix)] != handlePrefix {
		return stmtClaims{}, bad
	}
	payload, sig, ok := strings.Cut(s[len(handlePrefix):], ".")
	if !ok {
		return stmtClaims{}, bad
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return stmtClaims{}, bad
	}
	valid := false
	for _, k := range h.keys {
		if hmac.Equal(mac, h.mac(k, payload)) {
			valid = true
		}
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var c stmtClaims
	if !valid || err != nil || json.Unmarshal(b, &c) != nil {
		return stmtClaims{}, bad
	}
	return c, nil
}
