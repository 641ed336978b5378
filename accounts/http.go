package accounts

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/api"
	"moim/limit"
)

// Routes registers the account routes under r (mounted at /api).
// Sign-up and login are public; everything else needs a token.
func (a *Accounts) Routes(r fiber.Router, auth fiber.Handler) {
	r.Post("/auth/signup", limit.PerAddress(a.limits, "signup", a.rules.SignupPerAddress, "too many sign-ups from your address"), a.handleSignup)
	r.Post("/auth/login", a.handleLogin)
	r.Post("/auth/logout", auth, a.handleLogout)
	r.Get("/me", auth, a.handleMe)
	r.Put("/me/password", auth, a.handlePassword)
	r.Post("/ws-ticket", auth, a.handleTicket)
	r.Get("/contacts", auth, a.handleContacts)
	r.Post("/contacts", auth, a.handleAddContact)
	r.Delete("/contacts/:user_id", auth, a.handleRemoveContact)
	r.Get("/users/search", auth, a.searchLimit, a.handleSearch)
}

func (a *Accounts) handleSignup(c *fiber.Ctx) error {
	var req struct {
		Username    string `json:"username"`
		Password    string `json:"password"`
		DisplayName string `json:"display_name"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	u, err := a.Signup(c.UserContext(), req.Username, req.Password, req.DisplayName)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

func (a *Accounts) handleLogin(c *fiber.Ctx) error {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	tok, exp, u, err := a.Login(c.UserContext(), req.Username, req.Password, c.IP())
	if err != nil {
		return throttled(c, err)
	}
	return c.JSON(fiber.Map{"token": tok, "expires_at": exp.UTC().Format(time.RFC3339), "user": u})
}

// throttled answers a Throttled error with 429 and Retry-After.
func throttled(c *fiber.Ctx, err error) error {
	var th *Throttled
	if errors.As(err, &th) {
		return limit.TooMany(c, th.Wait, "too many failed logins")
	}
	return err
}

func (a *Accounts) handleLogout(c *fiber.Ctx) error {
	if err := a.tokens.Revoke(c.UserContext(), Token(c)); err != nil {
		return err
	}
	a.tokensChanged(c.UserContext(), UserID(c))
	return c.SendStatus(fiber.StatusNoContent)
}

func (a *Accounts) handlePassword(c *fiber.Ctx) error {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	tok, exp, err := a.ChangePassword(c.UserContext(), UserID(c), req.Current, req.New, c.IP())
	if err != nil {
		return throttled(c, err)
	}
	return c.JSON(fiber.Map{"token": tok, "expires_at": exp.UTC().Format(time.RFC3339)})
}

func (a *Accounts) handleMe(c *fiber.Ctx) error {
	u, err := a.Get(c.UserContext(), UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (a *Accounts) handleContacts(c *fiber.Ctx) error {
	users, err := a.Contacts(c.UserContext(), UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"contacts": users})
}

func (a *Accounts) handleAddContact(c *fiber.Ctx) error {
	var req struct {
		Username string `json:"username"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	u, created, err := a.AddContact(c.UserContext(), UserID(c), req.Username)
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(u)
}

func (a *Accounts) handleRemoveContact(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "user_id")
	if err != nil {
		return err
	}
	if err := a.RemoveContact(c.UserContext(), UserID(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
