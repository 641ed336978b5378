// Package push sends Web Push notifications (RFC 8030, encrypted per RFC
// 8291, signed with VAPID per RFC 8292) to members who have no live
// connection: subscriptions, the coalescing queue and the delivery.
package push

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// Keys is the server's VAPID key pair, base64url without padding: the
// public key is the applicationServerKey browsers subscribe with, so every
// node of a deployment must use the same pair.
type Keys struct {
	Public  string `json:"public"`
	Private string `json:"private"`
}

// Check verifies the pair is a P-256 private key and its public point.
func (k Keys) Check() error {
	priv, err := base64.RawURLEncoding.DecodeString(k.Private)
	if err != nil {
		return fmt.Errorf("push: VAPID private key is not base64url: %w", err)
	}
	pk, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("push: VAPID private key: %w", err)
	}
	pub, err := base64.RawURLEncoding.DecodeString(k.Public)
	if err != nil {
		return fmt.Errorf("push: VAPID public key is not base64url: %w", err)
	}
	if string(pk.PublicKey().Bytes()) != string(pub) {
		return errors.New("push: VAPID public key does not belong to the private key")
	}
	return nil
}

// LoadOrCreateKeys reads the pair kept in dir/vapid.json, generating and
// keeping one on first start (single-node and development setups; several
// nodes must be given one pair in settings).
func LoadOrCreateKeys(dir string) (Keys, error) {
	path := filepath.Join(dir, "vapid.json")
	var k Keys
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &k); err != nil {
			return Keys{}, fmt.Errorf("push: read %s: %w", path, err)
		}
		return k, k.Check()
	case !errors.Is(err, os.ErrNotExist):
		return Keys{}, fmt.Errorf("push: read %s: %w", path, err)
	}
	if k.Private, k.Public, err = webpush.GenerateVAPIDKeys(); err != nil {
		return Keys{}, fmt.Errorf("push: generate VAPID keys: %w", err)
	}
	raw, _ = json.Marshal(k) // two strings always marshal
	// A node with external backends may not have made its data directory.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("push: keep VAPID keys in %s: %w", dir, err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return Keys{}, fmt.Errorf("push: keep VAPID keys in %s: %w", path, err)
	}
	return k, nil
}
