package push

import (
	"github.com/gofiber/fiber/v2"

	"moim/api"
)

// Routes serves the subscription routes under r (/api).
func (n *Notifier) Routes(r fiber.Router, auth fiber.Handler, userID func(*fiber.Ctx) int64) {
	g := r.Group("/push")
	// The key is public: the client needs it before it subscribes.
	g.Get("/vapid-key", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"public_key": n.PublicKey()})
	})
	g.Post("/subscriptions", auth, func(c *fiber.Ctx) error {
		var req struct {
			Endpoint string `json:"endpoint"`
			Keys     struct {
				P256dh string `json:"p256dh"`
				Auth   string `json:"auth"`
			} `json:"keys"`
			// ExpirationTime is part of PushSubscription.toJSON(); the
			// server keeps a subscription until its service says it is gone.
			ExpirationTime *int64 `json:"expirationTime"`
		}
		if err := api.Decode(c, &req); err != nil {
			return err
		}
		if err := n.Subscribe(c.UserContext(), userID(c), req.Endpoint, req.Keys.P256dh, req.Keys.Auth); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusCreated)
	})
	g.Delete("/subscriptions", auth, func(c *fiber.Ctx) error {
		var req struct {
			Endpoint string `json:"endpoint"`
		}
		if err := api.Decode(c, &req); err != nil {
			return err
		}
		if err := n.Unsubscribe(c.UserContext(), userID(c), req.Endpoint); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
}
