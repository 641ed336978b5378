package accounts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"moim/api"
)

// Tokens issues and verifies the HS256 JWTs that identify a user on every
// REST call and WebSocket upgrade.
type Tokens struct {
	secret []byte
	ttl    time.Duration
}

// NewTokens returns a token issuer; ttl is how long a login lasts.
func NewTokens(secret []byte, ttl time.Duration) *Tokens {
	return &Tokens{secret: secret, ttl: ttl}
}

// Issue signs a token whose subject is the user id.
func (t *Tokens) Issue(userID int64) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(t.ttl)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(userID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: sign token: %w", err)
	}
	return s, exp, nil
}

// Verify checks signature, algorithm and expiry and returns the user id.
// Only HS256 is accepted, so "alg":"none" and key-confusion tokens fail.
func (t *Tokens) Verify(token string) (int64, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return 0, api.Unauthorized("token has expired; log in again")
		}
		return 0, api.Unauthorized("token is not valid")
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id <= 0 {
		return 0, api.Unauthorized("token is not valid")
	}
	return id, nil
}

// FromRequest takes the token from "Authorization: Bearer …" or, for
// WebSocket upgrades where browsers cannot set headers, from ?token=.
func FromRequest(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return c.Query("token")
}

const userKey = "moim.user"

// Require is middleware that admits only requests with a valid token and
// records the caller's id for UserID.
func (t *Tokens) Require() fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok := FromRequest(c)
		if tok == "" {
			return api.Unauthorized("missing token: send Authorization: Bearer <token>")
		}
		id, err := t.Verify(tok)
		if err != nil {
			return err
		}
		c.Locals(userKey, id)
		return c.Next()
	}
}

// UserID is the authenticated caller's id, set by Require.
func UserID(c *fiber.Ctx) int64 {
	id, _ := c.Locals(userKey).(int64)
	return id
}
