package fees

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
)

// WalletPIN is a user's wallet PIN (the original service's wallet
// password): once set, every request that moves their money carries it.
type WalletPIN struct {
	UserID int64  `gorm:"primaryKey;autoIncrement:false"`
	Hash   string `gorm:"size:60;not null"`
	// Failures counts wrong PINs since the last right one; at pinTries the
	// wallet locks until LockedUntil and the count starts again.
	Failures    int `gorm:"not null"`
	LockedUntil *time.Time
	UpdatedAt   time.Time
}

const (
	pinTries = 5
	pinLock  = 10 * time.Minute
	// PINHeader carries the PIN on money moves, out of request bodies
	// (which are logged and hashed for idempotency).
	PINHeader = "X-Wallet-PIN"
)

var pinRE = regexp.MustCompile(`^\d{6}$`)

// LockedError is the 429 answered while a wallet is locked; RetryAfter
// (seconds) goes in the Retry-After header.
type LockedError struct {
	err        *api.Error
	RetryAfter int
}

func (e *LockedError) Error() string { return e.err.Error() }

// Unwrap lets the API's error handler write the api.Error.
func (e *LockedError) Unwrap() error { return e.err }

func pinLocked(until time.Time) error {
	secs := int(time.Until(until).Seconds()) + 1
	return &LockedError{err: api.Errorf(429, "pin_locked",
		"too many wrong PINs; money moves are locked for "+strconv.Itoa(secs)+" more seconds"), RetryAfter: secs}
}

// SetPIN sets or changes the user's PIN; changing it takes the current one
// (and counts a wrong one like any other).
func (f *Fees) SetPIN(ctx context.Context, user int64, pin, current string) error {
	if !pinRE.MatchString(pin) {
		return api.Validation("pin must be 6 digits")
	}
	if err := f.CheckPIN(ctx, user, current); err != nil {
		return err
	}
	cost := f.pinCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pin), cost)
	if err != nil {
		return fmt.Errorf("fees: hash PIN: %w", err)
	}
	p := WalletPIN{UserID: user, Hash: string(hash)}
	err = f.db.WithContext(ctx).Save(&p).Error
	if err != nil {
		return fmt.Errorf("fees: set PIN of %d: %w", user, err)
	}
	return nil
}

// HasPIN reports whether the user set a PIN.
func (f *Fees) HasPIN(ctx context.Context, user int64) (bool, error) {
	p, err := f.pin(ctx, user)
	return p != nil, err
}

func (f *Fees) pin(ctx context.Context, user int64) (*WalletPIN, error) {
	var p WalletPIN
	err := f.db.WithContext(ctx).Take(&p, user).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fees: read PIN of %d: %w", user, err)
	}
	return &p, nil
}

// CheckPIN lets a money move by the user go ahead: always when they set no
// PIN, otherwise when pin is theirs. The fifth wrong PIN in a row locks
// money moves for ten minutes (429 pin_locked).
func (f *Fees) CheckPIN(ctx context.Context, user int64, pin string) error {
	p, err := f.pin(ctx, user)
	if err != nil || p == nil {
		return err
	}
	now := time.Now().UTC()
	if p.LockedUntil != nil && p.LockedUntil.After(now) {
		return pinLocked(*p.LockedUntil)
	}
	if pin == "" {
		return api.Errorf(401, "pin_required", "this wallet has a PIN; send it in the "+PINHeader+" header")
	}
	if bcrypt.CompareHashAndPassword([]byte(p.Hash), []byte(pin)) == nil {
		if p.Failures > 0 {
			if err := f.db.WithContext(ctx).Model(&WalletPIN{}).Where("user_id = ?", user).Update("failures", 0).Error; err != nil {
				return fmt.Errorf("fees: reset PIN failures of %d: %w", user, err)
			}
		}
		return nil
	}
	// Counted under the row's lock, so concurrent guesses each see the
	// count the one before left: exactly the fifth locks.
	var left int
	var lockedUntil *time.Time
	err = f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var cur WalletPIN
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&cur, user).Error; err != nil {
			return err
		}
		if cur.LockedUntil != nil && cur.LockedUntil.After(now) {
			lockedUntil = cur.LockedUntil
			return nil
		}
		set := map[string]any{"failures": cur.Failures + 1}
		if cur.Failures+1 >= pinTries {
			until := now.Add(pinLock)
			set = map[string]any{"failures": 0, "locked_until": &until}
			lockedUntil = &until
		}
		left = pinTries - cur.Failures - 1
		return tx.Model(&WalletPIN{}).Where("user_id = ?", user).Updates(set).Error
	})
	if err != nil {
		return fmt.Errorf("fees: count a wrong PIN of %d: %w", user, err)
	}
	if lockedUntil != nil {
		return pinLocked(*lockedUntil)
	}
	return api.Errorf(403, "wrong_pin", fmt.Sprintf("wrong PIN; %d tries left before money moves lock for 10 minutes", left))
}
