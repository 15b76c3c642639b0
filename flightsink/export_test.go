package flightsink

import "time"

// Test hooks of the authenticator: they reach unexported AuthConfig fields,
// so a test drives time and counts bcrypt comparisons instead of measuring.

// SetAuthClock makes the authenticator use now as its clock (failure
// limits, session expiry, the failure log's rate).
func SetAuthClock(c *AuthConfig, now func() time.Time) { c.now = now }

// SetAuthCompare replaces bcrypt.CompareHashAndPassword.
func SetAuthCompare(c *AuthConfig, compare func(hash, password []byte) error) { c.compare = compare }

// SetAuthLogRate sets the failure log's rate: burst lines, then one per every.
func SetAuthLogRate(c *AuthConfig, every time.Duration, burst int) {
	c.logRate = func() (time.Duration, int) { return every, burst }
}
