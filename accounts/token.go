package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"moim/api"
)

// checkEvery is how long a node trusts its last look at a token's
// revocation: a token revoked on another node stops working within it,
// and a busy client costs one SQL query per token per interval.
const checkEvery = 2 * time.Second

// Tokens issues and verifies the HS256 JWTs that identify a user on every
// REST call and WebSocket upgrade, and revokes them through SQL, which
// every node shares.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	// db is set by New; until then tokens are checked by signature only.
	db *gorm.DB
	// tickets redeem /ws?ticket= (UseTickets).
	tickets Tickets

	mu sync.Mutex
	// live caches tokens found valid in SQL, by hash, until the time held.
	live  map[string]liveToken
	swept time.Time
}

// liveToken is a token found valid at most checkEvery ago.
type liveToken struct {
	user  int64
	until time.Time
}

// claims are a token's contents. Version must equal the user's
// token_version: changing the password bumps it, revoking every token.
type claims struct {
	jwt.RegisteredClaims
	Version int64 `json:"ver,omitempty"`
}

// RevokedToken is a token logged out before it expires; kept until then.
type RevokedToken struct {
	Hash      string    `gorm:"primaryKey;size:64"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

// NewTokens returns a token issuer; ttl is how long a login lasts.
func NewTokens(secret []byte, ttl time.Duration) *Tokens {
	return &Tokens{secret: secret, ttl: ttl, live: map[string]liveToken{}}
}

// Issue signs a token whose subject is the user id, valid while the
// user's token version is version.
func (t *Tokens) Issue(userID, version int64) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(t.ttl)
	// A random id keeps two logins in the same second apart, so logging
	// one out leaves the other.
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: token id: %w", err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{RegisteredClaims: jwt.RegisteredClaims{
		ID:        hex.EncodeToString(id),
		Subject:   strconv.FormatInt(userID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}, Version: version})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: sign token: %w", err)
	}
	return s, exp, nil
}

// parse checks signature, algorithm and expiry. Only HS256 is accepted,
// so "alg":"none" and key-confusion tokens fail.
func (t *Tokens) parse(token string) (int64, *claims, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return 0, nil, api.Unauthorized("token has expired; log in again")
		}
		return 0, nil, api.Unauthorized("token is not valid")
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, api.Unauthorized("token is not valid")
	}
	return id, &c, nil
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

var errRevoked = api.Unauthorized("token has been revoked; log in again")

// Verify checks a token and that it is still live: its user exists, has
// not changed password since, and has not logged it out. It returns the
// user id.
func (t *Tokens) Verify(ctx context.Context, token string) (int64, error) {
	return t.verify(ctx, token, false)
}

// Recheck is Verify reading SQL even when this node checked the token
// moments ago: an open WebSocket's token is rechecked when the user's
// tokens change on any node.
func (t *Tokens) Recheck(ctx context.Context, token string) (int64, error) {
	return t.verify(ctx, token, true)
}

func (t *Tokens) verify(ctx context.Context, token string, fresh bool) (int64, error) {
	id, c, err := t.parse(token)
	if err != nil || t.db == nil {
		return id, err
	}
	key := hashToken(token)
	now := time.Now()
	t.mu.Lock()
	l, ok := t.live[key]
	t.mu.Unlock()
	if ok && now.Before(l.until) && !fresh {
		return id, nil
	}
	var row struct {
		TokenVersion int64
		Revoked      int64
	}
	err = t.db.WithContext(ctx).Model(&User{}).
		Select("token_version, (SELECT COUNT(*) FROM revoked_tokens WHERE hash = ?) AS revoked", key).
		Where("id = ?", id).Take(&row).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return 0, api.Unauthorized("the token's user no longer exists")
	case err != nil:
		return 0, fmt.Errorf("accounts: check token of user %d: %w", id, err)
	case row.Revoked > 0 || row.TokenVersion != c.Version:
		return 0, errRevoked
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	t.live[key] = liveToken{user: id, until: now.Add(checkEvery)}
	return id, nil
}

// sweep drops ended cache entries now and then; the caller holds t.mu.
func (t *Tokens) sweep(now time.Time) {
	if now.Sub(t.swept) < time.Minute {
		return
	}
	t.swept = now
	for k, l := range t.live {
		if !now.Before(l.until) {
			delete(t.live, k)
		}
	}
}

// forget drops what this node cached of a user's tokens, so a revocation
// holds here at once (other nodes see it within checkEvery).
func (t *Tokens) forget(userID int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, l := range t.live {
		if l.user == userID {
			delete(t.live, k)
		}
	}
}

// Revoke logs one token out until it would have expired.
func (t *Tokens) Revoke(ctx context.Context, token string) error {
	id, c, err := t.parse(token)
	if err != nil {
		return err
	}
	db := t.db.WithContext(ctx)
	r := RevokedToken{Hash: hashToken(token), ExpiresAt: c.ExpiresAt.Time}
	if err := db.Where("hash = ?", r.Hash).FirstOrCreate(&r).Error; err != nil {
		return fmt.Errorf("accounts: revoke token of user %d: %w", id, err)
	}
	// Rows whose token has expired anyway are no longer needed.
	if err := db.Where("expires_at < ?", time.Now()).Delete(&RevokedToken{}).Error; err != nil {
		return fmt.Errorf("accounts: purge revoked tokens: %w", err)
	}
	t.forget(id)
	return nil
}

// bearer takes the token from "Authorization: Bearer …".
func bearer(c *fiber.Ctx) string {
	if tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

const (
	userKey  = "moim.user"
	tokenKey = "moim.token"
)

// Require is middleware that admits only requests with a live token in
// the Authorization header and records the caller's id for UserID.
// ?token= is not read: URLs end up in logs and browser history.
func (t *Tokens) Require() fiber.Handler { return t.require(false) }

// RequireUpgrade is Require for GET /ws, where a browser cannot set a
// header: there a single-use ?ticket= (POST /api/ws-ticket) stands for
// the token, and, deprecated, ?token= itself.
func (t *Tokens) RequireUpgrade() fiber.Handler { return t.require(true) }

func (t *Tokens) require(query bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok := bearer(c)
		if tok == "" && c.Get(fiber.HeaderAuthorization) == "" && query {
			var err error
			if tok, err = t.fromQuery(c); err != nil {
				return err
			}
		}
		if tok == "" {
			return api.Unauthorized("missing token: send Authorization: Bearer <token>")
		}
		id, err := t.Verify(c.UserContext(), tok)
		if err != nil {
			return err
		}
		c.Locals(userKey, id)
		// Fiber's strings point into the request buffer, which the next
		// request reuses; a WebSocket keeps its token for its whole life.
		c.Locals(tokenKey, strings.Clone(tok))
		return c.Next()
	}
}

// fromQuery is the token a WebSocket upgrade names in its URL: redeemed
// from ?ticket=, or ?token= as it is.
func (t *Tokens) fromQuery(c *fiber.Ctx) (string, error) {
	ticket := c.Query("ticket")
	if ticket == "" {
		return c.Query("token"), nil
	}
	if t.tickets == nil {
		return "", api.Unauthorized("tickets are not enabled on this node")
	}
	tok, ok, err := t.tickets.take(c.UserContext(), ticket)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", api.Unauthorized("ticket is unknown, used or expired; ask POST /api/ws-ticket for another")
	}
	return tok, nil
}

// UserID is the authenticated caller's id, set by Require.
func UserID(c *fiber.Ctx) int64 {
	id, _ := c.Locals(userKey).(int64)
	return id
}

// Token is the caller's token, set by Require.
func Token(c *fiber.Ctx) string {
	s, _ := c.Locals(tokenKey).(string)
	return s
}
