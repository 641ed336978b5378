package accounts

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"moim/api"
	"moim/limit"
)

// Found is one user a search found, as the searcher sees them.
type Found struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	// Contact is whether the searcher has them among their contacts.
	Contact bool `json:"contact"`
}

// ContactView is a contact as its owner sees them.
type ContactView struct {
	User
	// Mutual is whether the contact has the owner among theirs too: only
	// then does inviting them add them to a room at once.
	Mutual bool `json:"mutual"`
}

// Bounds of a user search: a prefix of at least three characters (a
// shorter one lists too many people to be finding one), a short page.
const (
	minSearchPrefix = 3
	maxFound        = 20
)

// Search finds users whose username starts with prefix (case-insensitive),
// by username, leaving out the searcher.
func (a *Accounts) Search(ctx context.Context, userID int64, prefix string) ([]Found, error) {
	prefix = normalizeUsername(prefix)
	if len(prefix) < minSearchPrefix || !usernameRE.MatchString(prefix) {
		return nil, api.Validation(fmt.Sprintf("q must be at least %d characters of a username (a-z, 0-9, '_', '.', '-')", minSearchPrefix))
	}
	out := []Found{}
	err := a.db.WithContext(ctx).Table("users").
		Select("users.id, users.username, users.display_name, "+
			"EXISTS (SELECT 1 FROM contacts c WHERE c.user_id = ? AND c.contact_id = users.id) AS contact", userID).
		Where("users.username LIKE ? ESCAPE '!' AND users.id <> ?", api.EscapeLike(prefix)+"%", userID).
		Order("users.username").Limit(maxFound).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("accounts: search users by %q: %w", prefix, err)
	}
	return out, nil
}

// searchLimit counts one user's searches (SearchPerUser), so the user
// list cannot be walked prefix by prefix at speed.
func (a *Accounts) searchLimit(c *fiber.Ctx) error {
	if a.limits == nil || a.rules.SearchPerUser.Off() {
		return c.Next()
	}
	u, err := a.limits.Take(c.UserContext(), "user-search", strconv.FormatInt(UserID(c), 10), a.rules.SearchPerUser)
	if err != nil {
		return fmt.Errorf("accounts: count user search: %w", err)
	}
	if !u.OK {
		return limit.TooMany(c, u.Wait, "too many user searches")
	}
	return c.Next()
}

func (a *Accounts) handleSearch(c *fiber.Ctx) error {
	found, err := a.Search(c.UserContext(), UserID(c), c.Query("q"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"users": found})
}
