// Package accounts owns users: sign-up, login, tokens and contacts.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"moim/api"
	"moim/limit"
	"moim/sqldb"
)

// User is a Moim account.
type User struct {
	ID           int64  `gorm:"primaryKey" json:"id"`
	Username     string `gorm:"size:32;not null;uniqueIndex" json:"username"`
	DisplayName  string `gorm:"size:64;not null" json:"display_name"`
	PasswordHash string `gorm:"size:60;not null" json:"-"`
	// TokenVersion is in every token issued; bumping it (a password
	// change) revokes them all.
	TokenVersion int64     `gorm:"not null;default:0" json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// Contact is one entry in a user's address book.
type Contact struct {
	UserID    int64 `gorm:"primaryKey;autoIncrement:false"`
	ContactID int64 `gorm:"primaryKey;autoIncrement:false;index"`
	CreatedAt time.Time
}

// Limits caps sign-ups and failed logins; a zero limit.Rule is off.
type Limits struct {
	// LoginPerUser counts failed logins of one username from one
	// address, and from everywhere for addresses that have failed it
	// before; LoginPerAddress those from one client address (many
	// usernames guessed from one place). Both windows end on their own,
	// so nobody is locked out for good.
	LoginPerUser, LoginPerAddress limit.Rule
	// SignupPerAddress counts sign-ups from one client address.
	SignupPerAddress limit.Rule
	// SearchPerUser counts one user's user searches.
	SearchPerUser limit.Rule
}

// Accounts serves the account routes.
type Accounts struct {
	db     *gorm.DB
	limits limit.Limiter
	rules  Limits
	tokens *Tokens
	cost   int
	// dummyHash is compared against when the username is unknown, so a
	// login takes as long whether or not the user exists.
	dummyHash []byte
	// changed hears of revocations (OnTokensChanged).
	changed func(ctx context.Context, userID int64)
}

// OnTokensChanged sets what hears that a user's tokens were revoked, so
// open WebSockets with them are closed; call it before serving.
func (a *Accounts) OnTokensChanged(f func(ctx context.Context, userID int64)) { a.changed = f }

func (a *Accounts) tokensChanged(ctx context.Context, userID int64) {
	if a.changed != nil {
		a.changed(ctx, userID)
	}
}

// CheckToken reads afresh whether token still authenticates its user.
func (a *Accounts) CheckToken(ctx context.Context, token string) error {
	_, err := a.tokens.Recheck(ctx, token)
	return err
}

// New returns the accounts module. bcryptCost is MOIM_BCRYPT_COST; lim
// counts what rules limit.
func New(db *gorm.DB, lim limit.Limiter, rules Limits, tokens *Tokens, bcryptCost int) (*Accounts, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("moim-timing-equaliser"), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("accounts: bcrypt cost %d: %w", bcryptCost, err)
	}
	tokens.db = db
	return &Accounts{db: db, limits: lim, rules: rules, tokens: tokens, cost: bcryptCost, dummyHash: dummy}, nil
}

// Migrate creates or updates the accounts tables.
func (a *Accounts) Migrate() error {
	if err := a.db.AutoMigrate(&User{}, &Contact{}, &RevokedToken{}); err != nil {
		return fmt.Errorf("accounts: migrate: %w", err)
	}
	return nil
}

var usernameRE = regexp.MustCompile(`^[a-z0-9_.-]{3,32}$`)

func normalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// CheckDisplayName trims a display name and checks it is 1–64 printable
// runes without format characters (api.UnsafeNameRune).
func CheckDisplayName(s string) (string, error) {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if n < 1 || n > 64 || !utf8.ValidString(s) || !api.SafeName(s) {
		return "", api.Validation("display_name must be 1 to 64 printable characters, without control or invisible formatting characters")
	}
	return s, nil
}

func checkPassword(p string) error {
	if len(p) < 8 || len(p) > 72 {
		return api.Validation("password must be 8 to 72 bytes long")
	}
	return nil
}

// Signup creates a user.
func (a *Accounts) Signup(ctx context.Context, username, password, displayName string) (*User, error) {
	username = normalizeUsername(username)
	if !usernameRE.MatchString(username) {
		return nil, api.Validation("username must be 3 to 32 characters of a-z, 0-9, '_', '.' or '-'")
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	displayName, err := CheckDisplayName(displayName)
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), a.cost)
	if err != nil {
		return nil, fmt.Errorf("accounts: hash password: %w", err)
	}
	u := &User{Username: username, DisplayName: displayName, PasswordHash: string(hash)}
	if err := a.db.WithContext(ctx).Create(u).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return nil, api.Conflict("username_taken", "that username is taken")
		}
		return nil, fmt.Errorf("accounts: create user %q: %w", username, err)
	}
	return u, nil
}

// Limit names of the login counters.
const (
	loginPair    = "login-pair" // one username from one address
	loginUser    = "login-user"
	loginAddress = "login-addr"
)

var errBadLogin = api.Unauthorized("wrong username or password")

// Throttled refuses a login after too many failures; Wait is how long
// until the window ends.
type Throttled struct{ Wait time.Duration }

func (t *Throttled) Error() string { return "too many failed logins" }

// held is one attempt reserved in a limit counter.
type held struct{ name, subject string }

// Login checks a password from a client address and issues a token.
// The attempt is counted before the password is checked, so parallel
// guesses cannot all slip under a limit, and given back when it succeeds.
func (a *Accounts) Login(ctx context.Context, username, password, addr string) (string, time.Time, *User, error) {
	username = normalizeUsername(username)
	holds, err := a.reserveLogin(ctx, username, addr)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	var u User
	err = a.db.WithContext(ctx).Where("username = ?", username).Take(&u).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		_ = bcrypt.CompareHashAndPassword(a.dummyHash, []byte(password))
		return "", time.Time{}, nil, errBadLogin
	case err != nil:
		return "", time.Time{}, nil, fmt.Errorf("accounts: find user %q: %w", username, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return "", time.Time{}, nil, errBadLogin
	}
	// The right password clears this username's failures and gives back
	// the address's reservation.
	for _, h := range holds {
		if h.name == loginAddress {
			err = a.limits.Give(ctx, h.name, h.subject)
		} else {
			err = a.limits.Reset(ctx, h.name, h.subject)
		}
		if err != nil {
			return "", time.Time{}, nil, fmt.Errorf("accounts: clear login failures: %w", err)
		}
	}
	tok, exp, err := a.tokens.Issue(u.ID, u.TokenVersion)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	return tok, exp, &u, nil
}

// reserveLogin counts one attempt against the username from this address,
// the address, and the username from anywhere, or refuses it. The
// username-wide count stops only addresses that have themselves failed
// this username in the window: otherwise anyone could lock a user out by
// failing their logins, and the owner logging in from home would be
// refused.
func (a *Accounts) reserveLogin(ctx context.Context, username, addr string) ([]held, error) {
	var holds []held
	refuse := func(wait time.Duration) ([]held, error) {
		for _, h := range holds {
			if err := a.limits.Give(ctx, h.name, h.subject); err != nil {
				return nil, fmt.Errorf("accounts: give back login attempt: %w", err)
			}
		}
		return nil, &Throttled{wait}
	}
	pair := username + " " + addr // a username has no spaces
	first := true
	for _, c := range []held{{loginPair, pair}, {loginAddress, addr}, {loginUser, username}} {
		rule := a.rules.LoginPerUser
		if c.name == loginAddress {
			rule = a.rules.LoginPerAddress
		}
		u, err := a.limits.Take(ctx, c.name, c.subject, rule)
		if err != nil {
			return nil, fmt.Errorf("accounts: count login attempt: %w", err)
		}
		if c.name == loginPair {
			first = u.Count <= 1
		}
		switch {
		case u.OK:
			holds = append(holds, c)
		case c.name == loginUser && first:
			// A stranger's failures do not stop this address's first try.
		default:
			return refuse(u.Wait)
		}
	}
	return holds, nil
}

// ChangePassword sets a new password after checking the current one, and
// revokes every token the user holds; it returns a fresh token for the
// caller. Wrong current passwords count as failed logins.
func (a *Accounts) ChangePassword(ctx context.Context, userID int64, current, next, addr string) (string, time.Time, error) {
	if err := checkPassword(next); err != nil {
		return "", time.Time{}, err
	}
	u, err := a.Get(ctx, userID)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, _, _, err := a.Login(ctx, u.Username, current, addr); err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == 401 {
			return "", time.Time{}, api.Errorf(403, "wrong_password", "current_password is wrong")
		}
		return "", time.Time{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), a.cost)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: hash password: %w", err)
	}
	err = a.db.WithContext(ctx).Model(&User{}).Where("id = ?", userID).
		Updates(map[string]any{"password_hash": string(hash), "token_version": gorm.Expr("token_version + 1")}).Error
	if err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: change password of %d: %w", userID, err)
	}
	a.tokens.forget(userID)
	a.tokensChanged(ctx, userID)
	if u, err = a.Get(ctx, userID); err != nil {
		return "", time.Time{}, err
	}
	return a.tokens.Issue(u.ID, u.TokenVersion)
}

// Get returns one user.
func (a *Accounts) Get(ctx context.Context, id int64) (*User, error) {
	var u User
	err := a.db.WithContext(ctx).Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, api.NotFound("user")
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: get user %d: %w", id, err)
	}
	return &u, nil
}

// DisplayNames maps each of ids that exists to its display name: what
// rooms and fees show beside a member, without reading this package's
// table themselves.
func (a *Accounts) DisplayNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	var users []User
	if err := a.db.WithContext(ctx).Select("id", "display_name").Where("id IN ?", ids).Find(&users).Error; err != nil {
		return nil, fmt.Errorf("accounts: display names of %d users: %w", len(ids), err)
	}
	out := make(map[int64]string, len(users))
	for _, u := range users {
		out[u.ID] = u.DisplayName
	}
	return out, nil
}

// Usernames maps each of ids that exists to its username, for rooms'
// member and ban lists.
func (a *Accounts) Usernames(ctx context.Context, ids []int64) (map[int64]string, error) {
	var users []User
	if err := a.db.WithContext(ctx).Select("id", "username").Where("id IN ?", ids).Find(&users).Error; err != nil {
		return nil, fmt.Errorf("accounts: usernames of %d users: %w", len(ids), err)
	}
	out := make(map[int64]string, len(users))
	for _, u := range users {
		out[u.ID] = u.Username
	}
	return out, nil
}

// UserIDs lists the ids of the users among usernames (lower case, as
// stored) that exist, for @mentions.
func (a *Accounts) UserIDs(ctx context.Context, usernames []string) ([]int64, error) {
	var ids []int64
	if err := a.db.WithContext(ctx).Model(&User{}).Where("username IN ?", usernames).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("accounts: ids of %d usernames: %w", len(usernames), err)
	}
	return ids, nil
}

// WhoHaveContact lists those of ids who have contactID among their
// contacts: rooms adds them to a room at once instead of inviting them.
func (a *Accounts) WhoHaveContact(ctx context.Context, contactID int64, ids []int64) ([]int64, error) {
	var out []int64
	if err := a.db.WithContext(ctx).Model(&Contact{}).Where("contact_id = ? AND user_id IN ?", contactID, ids).
		Pluck("user_id", &out).Error; err != nil {
		return nil, fmt.Errorf("accounts: who of %d users has %d as a contact: %w", len(ids), contactID, err)
	}
	return out, nil
}

// Contacts lists a user's contacts by display name, each saying whether
// they have the user among their contacts too.
func (a *Accounts) Contacts(ctx context.Context, userID int64) ([]ContactView, error) {
	out := []ContactView{}
	err := a.db.WithContext(ctx).Table("users").
		Select("users.*, EXISTS (SELECT 1 FROM contacts b WHERE b.user_id = users.id AND b.contact_id = ?) AS mutual", userID).
		Joins("JOIN contacts ON contacts.contact_id = users.id").
		Where("contacts.user_id = ?", userID).
		Order("users.display_name, users.id").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("accounts: list contacts of %d: %w", userID, err)
	}
	return out, nil
}

// AddContact adds the user with exactly this username to userID's
// contacts. It reports whether the contact is new. Ids are not accepted:
// counting through them would list every user's name.
func (a *Accounts) AddContact(ctx context.Context, userID int64, username string) (*User, bool, error) {
	if username == "" {
		return nil, false, api.Validation("username is required")
	}
	var u User
	q := a.db.WithContext(ctx)
	err := q.Where("username = ?", normalizeUsername(username)).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, false, api.NotFound("user")
	}
	if err != nil {
		return nil, false, fmt.Errorf("accounts: find contact: %w", err)
	}
	if u.ID == userID {
		return nil, false, api.Validation("you cannot add yourself as a contact")
	}
	err = q.Create(&Contact{UserID: userID, ContactID: u.ID}).Error
	if sqldb.IsDuplicate(err) {
		return &u, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("accounts: add contact %d for %d: %w", u.ID, userID, err)
	}
	return &u, true, nil
}

// RemoveContact removes a contact; removing one that is not there is 404.
func (a *Accounts) RemoveContact(ctx context.Context, userID, contactID int64) error {
	res := a.db.WithContext(ctx).Where("user_id = ? AND contact_id = ?", userID, contactID).Delete(&Contact{})
	if res.Error != nil {
		return fmt.Errorf("accounts: remove contact %d of %d: %w", contactID, userID, res.Error)
	}
	if res.RowsAffected == 0 {
		return api.NotFound("contact")
	}
	return nil
}
