package push

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
)

// Subscription is one browser's push subscription (PushSubscription in
// the Push API): where to post and the keys to encrypt for.
type Subscription struct {
	ID     int64 `gorm:"primaryKey"`
	UserID int64 `gorm:"not null;index"`
	// Hash is the endpoint's SHA-256 in hex: one row per endpoint, and an
	// index that fits any endpoint length.
	Hash      string `gorm:"size:64;not null;uniqueIndex"`
	Endpoint  string `gorm:"size:2048;not null"`
	P256dh    string `gorm:"size:100;not null"`
	Auth      string `gorm:"size:32;not null"`
	CreatedAt time.Time
}

// TableName keeps the table's name plain.
func (Subscription) TableName() string { return "push_subscriptions" }

// maxPerUser caps one user's subscriptions (browsers and devices); a new
// one past it replaces the oldest.
const maxPerUser = 10

func endpointHash(endpoint string) string {
	h := sha256.Sum256([]byte(endpoint))
	return hex.EncodeToString(h[:])
}

// decodeKey reads a base64url key as browsers give it (padded or not).
func decodeKey(s string) ([]byte, error) {
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

// checkKeys accepts a P-256 public key (p256dh) and a 16-byte auth secret.
func checkKeys(p256dh, auth string) error {
	pub, err := decodeKey(p256dh)
	if err != nil {
		return api.Validation("keys.p256dh must be base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(pub); err != nil {
		return api.Validation("keys.p256dh must be an uncompressed P-256 public key")
	}
	a, err := decodeKey(auth)
	if err != nil || len(a) != 16 {
		return api.Validation("keys.auth must be 16 bytes, base64url")
	}
	return nil
}

// Subscribe records userID's subscription. An endpoint already known
// (the browser resubscribed, or another user logged in on it) is taken
// over with its new keys: one browser notifies the one who uses it now.
func (n *Notifier) Subscribe(ctx context.Context, userID int64, endpoint, p256dh, auth string) error {
	if err := CheckEndpoint(endpoint, n.cfg.AllowLoopback); err != nil {
		return api.Validation(err.Error())
	}
	if err := checkKeys(p256dh, auth); err != nil {
		return err
	}
	sub := Subscription{UserID: userID, Hash: endpointHash(endpoint), Endpoint: endpoint, P256dh: p256dh, Auth: auth, CreatedAt: time.Now().UTC()}
	err := n.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "hash"}},
			DoUpdates: clause.AssignmentColumns([]string{"user_id", "p256dh", "auth", "created_at"}),
		}).Create(&sub).Error; err != nil {
			return fmt.Errorf("push: subscribe user %d: %w", userID, err)
		}
		var ids []int64
		if err := tx.Model(&Subscription{}).Where("user_id = ?", userID).Order("created_at DESC, id DESC").
			Pluck("id", &ids).Error; err != nil {
			return fmt.Errorf("push: subscriptions of user %d: %w", userID, err)
		}
		if len(ids) > maxPerUser {
			return tx.Delete(&Subscription{}, ids[maxPerUser:]).Error
		}
		return nil
	})
	if err == nil {
		n.changed(ctx)
	}
	return err
}

// Unsubscribe forgets userID's subscription with this endpoint; 404 when
// the user has none there.
func (n *Notifier) Unsubscribe(ctx context.Context, userID int64, endpoint string) error {
	res := n.db.WithContext(ctx).Where("hash = ? AND user_id = ?", endpointHash(endpoint), userID).Delete(&Subscription{})
	if res.Error != nil {
		return fmt.Errorf("push: unsubscribe user %d: %w", userID, res.Error)
	}
	if res.RowsAffected == 0 {
		return api.NotFound("subscription")
	}
	n.changed(ctx)
	return nil
}

// Subscriptions lists a user's subscriptions (the tests check removals).
func (n *Notifier) Subscriptions(ctx context.Context, userID int64) ([]Subscription, error) {
	var out []Subscription
	if err := n.db.WithContext(ctx).Where("user_id = ?", userID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("push: subscriptions of user %d: %w", userID, err)
	}
	return out, nil
}

// forget drops a subscription the push service says is gone (404, 410).
func (n *Notifier) forget(ctx context.Context, id int64) {
	if err := n.db.WithContext(ctx).Delete(&Subscription{}, id).Error; err != nil {
		n.log.Warn("push: drop a dead subscription", "id", id, "err", err)
		return
	}
	n.changed(ctx)
}
