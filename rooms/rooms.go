// Package rooms owns chat rooms and their members: creation, 1:1 rooms,
// search, joining with an optional password, roles and the Redis mirror
// of membership that the hub checks on every send.
package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"moim/api"
	"moim/chatlog"
	"moim/limit"
	"moim/sqldb"
)

// Roles a member can hold. The owner created the room; admins manage it.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Room is a group chat or a 1:1 conversation.
type Room struct {
	ID           int64  `gorm:"primaryKey"`
	Name         string `gorm:"size:100;not null;index"`
	Description  string `gorm:"size:500;not null"`
	PasswordHash string `gorm:"size:60;not null"`
	OwnerID      int64  `gorm:"not null;index"`
	Direct       bool   `gorm:"not null"`
	// DirectKey is "lo:hi" of the two user ids for a 1:1 room and NULL
	// otherwise; its unique index makes opening a 1:1 chat idempotent.
	DirectKey *string `gorm:"size:41;uniqueIndex"`
	// MembersInvite lets plain members invite and make invite links, not
	// only admins. Default off: a club decides who brings people in.
	MembersInvite bool `gorm:"not null;default:false"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Member is a user's place in a room.
type Member struct {
	RoomID   int64     `gorm:"primaryKey;autoIncrement:false"`
	UserID   int64     `gorm:"primaryKey;autoIncrement:false;index"`
	Role     string    `gorm:"size:8;not null"`
	JoinedAt time.Time `gorm:"not null"`
	// Muted rooms push a member only what names them (push notifications).
	Muted bool `gorm:"not null;default:false"`
}

// View is a room as the API shows it to one user.
type View struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	OwnerID     int64  `json:"owner_id"`
	Direct      bool   `json:"direct"`
	HasPassword bool   `json:"has_password"`
	MemberCount int64  `json:"member_count"`
	Role        string `json:"role,omitempty"`
	// MembersInvite is the room setting letting plain members invite.
	MembersInvite bool      `json:"members_invite"`
	CreatedAt     time.Time `json:"created_at"`
	// Muted is set when the caller muted the room's push notifications.
	Muted bool `json:"muted"`
	// Unread and LastMessage are filled in the caller's own room list.
	Unread *int64 `json:"unread,omitempty"`
	// UnreadMentions counts unread messages mentioning the caller.
	UnreadMentions *int64          `json:"unread_mentions,omitempty"`
	LastMessage    json.RawMessage `json:"last_message,omitempty"`
	// Notice is the room's pinned message (공지), when it has one.
	Notice *NoticeView `json:"notice,omitempty"`
	// Invited is set in room creation's answer: the member_ids who were
	// invited rather than added (they do not have the creator as a contact).
	Invited []int64 `json:"invited,omitempty"`
}

// MemberView is one member as listed to the room.
type MemberView struct {
	UserID      int64     `json:"user_id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	JoinedAt    time.Time `json:"joined_at"`
}

// Rooms serves the room routes.
type Rooms struct {
	db     *gorm.DB
	mirror Mirror
	people People
	cost   int
	live   Live
	limits limit.Limiter
	rules  JoinLimits
	money  Money
	// addAnyone adds every invited user at once (AddAnyone).
	addAnyone bool
}

// Money is what a room's lifecycle needs from its fund: a fund holding
// money keeps its room, and members who go stop paying into it.
type Money interface {
	// CloseFund runs inside the transaction deleting the room; an error
	// (409 fund_not_empty) keeps the room.
	CloseFund(tx *gorm.DB, roomID int64) error
	// Departed hears, after the commit, of users who left or were removed
	// (deleted: the whole room went).
	Departed(ctx context.Context, roomID int64, userIDs []int64, deleted bool)
}

// OnMoney connects the rooms to the fees module; call it before serving.
func (s *Rooms) OnMoney(m Money) { s.money = m }

// JoinLimits caps wrong room passwords, so a password cannot be guessed
// online; a zero limit.Rule is off.
type JoinLimits struct {
	// PerUser counts one user's wrong passwords in any room, PerAddress
	// those from one client address (many accounts guessing together).
	PerUser, PerAddress limit.Rule
}

// LimitJoins sets what counts wrong room passwords; call it before
// serving. Until then joins are not limited.
func (s *Rooms) LimitJoins(l limit.Limiter, rules JoinLimits) { s.limits, s.rules = l, rules }

// Mirror is the copy of membership the real-time side checks on every
// send, with no SQL on that path: RedisMirror when nodes share Redis,
// MemoryMirror on a single node. SQL stays the source of truth.
type Mirror interface {
	// Open starts a new room with its first members.
	Open(ctx context.Context, roomID int64, userIDs ...int64) error
	Add(ctx context.Context, roomID int64, userIDs ...int64) error
	Remove(ctx context.Context, roomID, userID int64) error
	Drop(ctx context.Context, roomID int64) error
	// Rebuild copies every membership from SQL unless the mirror holds
	// them already, and reports how many it copied.
	Rebuild(ctx context.Context, db *gorm.DB) (int, error)
}

// Live is the real-time side (the hub) as rooms sees it.
type Live interface {
	// MembershipChanged hears of every committed membership change, so
	// the hub starts or stops delivering the room to those users.
	MembershipChanged(ctx context.Context, roomID int64, userIDs []int64, joined bool)
	// Activity is each room's newest seq, the user's read position and
	// the newest message, for the room list.
	Activity(ctx context.Context, roomIDs []int64, userID int64) (map[int64]chatlog.Activity, error)
	// Announce posts a system message into a room, best effort (the hub
	// logs a failure; the change it announces stands).
	Announce(ctx context.Context, roomID int64, body, idem string, system json.RawMessage)
	// Notify sends an event to every live connection of users.
	Notify(ctx context.Context, userIDs []int64, event []byte)
	// Message is one message as clients see it now, nil when none.
	Message(ctx context.Context, roomID, seq int64) ([]byte, error)
	// Publish sends an unstored event to a room's live connections.
	Publish(ctx context.Context, roomID int64, event []byte) error
}

// Attach connects the real-time side; call it before serving (the hub is
// built after rooms, since it asks rooms who is where).
func (s *Rooms) Attach(l Live) { s.live = l }

func (s *Rooms) changed(ctx context.Context, roomID int64, userIDs []int64, joined bool) {
	if s.live != nil && len(userIDs) > 0 {
		s.live.MembershipChanged(ctx, roomID, userIDs, joined)
	}
}

// IDsOf lists the rooms a user is in.
func (s *Rooms) IDsOf(ctx context.Context, userID int64) ([]int64, error) {
	var ids []int64
	if err := s.db.WithContext(ctx).Model(&Member{}).Where("user_id = ?", userID).Pluck("room_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("rooms: rooms of user %d: %w", userID, err)
	}
	return ids, nil
}

// People answers what rooms needs to know of users: their names and
// contacts (accounts owns them and their tables).
type People interface {
	// DisplayNames maps each of ids that exists to its display name.
	DisplayNames(ctx context.Context, ids []int64) (map[int64]string, error)
	// Usernames maps each of ids that exists to its username.
	Usernames(ctx context.Context, ids []int64) (map[int64]string, error)
	// UserIDs lists the ids of the users among usernames that exist.
	UserIDs(ctx context.Context, usernames []string) ([]int64, error)
	// WhoHaveContact lists those of ids who have contactID among their
	// contacts.
	WhoHaveContact(ctx context.Context, contactID int64, ids []int64) ([]int64, error)
}

// named is a user's two names, read through Names.
type named struct{ username, display string }

// nameUsers reads the names of ids; a user who no longer exists is
// missing from the map.
func (s *Rooms) nameUsers(ctx context.Context, ids []int64) (map[int64]named, error) {
	out := make(map[int64]named, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	usernames, err := s.people.Usernames(ctx, ids)
	if err != nil {
		return nil, err
	}
	displays, err := s.people.DisplayNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	for id, u := range usernames {
		out[id] = named{u, displays[id]}
	}
	return out, nil
}

// New returns the rooms module; people names members (in lists, system
// messages and 1:1 rooms) and says who has whom as a contact, bcryptCost
// hashes room passwords.
func New(db *gorm.DB, mirror Mirror, people People, bcryptCost int) *Rooms {
	return &Rooms{db: db, mirror: mirror, people: people, cost: bcryptCost}
}

// Migrate creates or updates the room tables.
func (s *Rooms) Migrate() error {
	if err := s.db.AutoMigrate(&Room{}, &Member{}, &Invitation{}, &Notice{}, &Ban{}, &InviteLink{}); err != nil {
		return fmt.Errorf("rooms: migrate: %w", err)
	}
	return nil
}

// Mirror is the real-time side's copy of membership.
func (s *Rooms) Mirror() Mirror { return s.mirror }

// mirrored runs a SQL change and its Redis mirror as one step: the SQL
// transaction commits only if Redis took the change, and the Redis change
// is undone if the commit itself fails.
func (s *Rooms) mirrored(ctx context.Context, change func(tx *gorm.DB) error, mirror, undo func() error) error {
	done := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := change(tx); err != nil {
			return err
		}
		if err := mirror(); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil && done {
		_ = undo()
	}
	return err
}

func checkName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if n := utf8.RuneCountInString(s); n < 1 || n > 100 || !api.SafeName(s) {
		return "", api.Validation("name must be 1 to 100 printable characters, without control or invisible formatting characters")
	}
	return s, nil
}

func checkDescription(s string) (string, error) {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 500 {
		return "", api.Validation("description must be at most 500 characters")
	}
	return s, nil
}

// minPassword is the shortest room password, in bytes, as for accounts.
const minPassword = 8

func (s *Rooms) hashPassword(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	// Joins are limited (JoinLimits), but a short password falls to the
	// guesses a window allows.
	if len(p) < minPassword || len(p) > 72 {
		return "", api.Validation("password must be 8 to 72 bytes, or empty for none")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(p), s.cost)
	if err != nil {
		return "", fmt.Errorf("rooms: hash password: %w", err)
	}
	return string(h), nil
}

// Create makes a room owned by ownerID with the listed users as members.
func (s *Rooms) Create(ctx context.Context, ownerID int64, name, description, password string, memberIDs []int64) (*View, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	if description, err = checkDescription(description); err != nil {
		return nil, err
	}
	if len(memberIDs) > 1000 {
		return nil, api.Validation("member_ids may list at most 1000 users; invite the rest later")
	}
	ids := uniqueOthers(memberIDs, ownerID)
	if err := s.checkUsersExist(ctx, ids); err != nil {
		return nil, err
	}
	// The same rule as Invite: contacts are added, the others invited.
	ids, invite, err := s.byContact(ctx, ownerID, ids)
	if err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return nil, err
	}
	room := &Room{Name: name, Description: description, PasswordHash: hash, OwnerID: ownerID}
	now := time.Now().UTC()
	err = s.mirrored(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(room).Error; err != nil {
			return fmt.Errorf("rooms: create room: %w", err)
		}
		members := []Member{{RoomID: room.ID, UserID: ownerID, Role: RoleOwner, JoinedAt: now}}
		for _, id := range ids {
			members = append(members, Member{RoomID: room.ID, UserID: id, Role: RoleMember, JoinedAt: now})
		}
		if err := tx.CreateInBatches(members, 500).Error; err != nil {
			return fmt.Errorf("rooms: add %d members to room %d: %w", len(members), room.ID, err)
		}
		return nil
	}, func() error {
		return s.mirror.Open(ctx, room.ID, append([]int64{ownerID}, ids...)...)
	}, func() error {
		return s.mirror.Drop(ctx, room.ID)
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx, room.ID, append([]int64{ownerID}, ids...), true)
	if err := s.invite(ctx, room, ownerID, invite); err != nil {
		return nil, err
	}
	v, err := s.view(ctx, room.ID, ownerID)
	if err == nil {
		v.Invited = append([]int64{}, invite...)
	}
	return v, err
}

func uniqueOthers(ids []int64, self int64) []int64 {
	seen := map[int64]bool{self: true}
	out := []int64{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func (s *Rooms) checkUsersExist(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	found, err := s.people.Usernames(ctx, ids)
	if err != nil {
		return fmt.Errorf("rooms: check %d users: %w", len(ids), err)
	}
	if len(found) == len(ids) {
		return nil
	}
	var missing []string
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			missing = append(missing, strconv.FormatInt(id, 10))
		}
	}
	return api.Validation("no such user: " + strings.Join(missing, ", "))
}

// Direct opens the 1:1 room between userID and peerID, creating it the
// first time. It reports whether the room is new.
func (s *Rooms) Direct(ctx context.Context, userID, peerID int64) (*View, bool, error) {
	if peerID == userID {
		return nil, false, api.Validation("a 1:1 chat needs another user")
	}
	var ae *api.Error
	if err := s.checkUsersExist(ctx, []int64{peerID}); errors.As(err, &ae) {
		return nil, false, api.NotFound("user")
	} else if err != nil {
		return nil, false, err
	}
	lo, hi := min(userID, peerID), max(userID, peerID)
	key := fmt.Sprintf("%d:%d", lo, hi)
	var existing Room
	err := s.db.WithContext(ctx).Where("direct_key = ?", key).Take(&existing).Error
	if err == nil {
		v, err := s.view(ctx, existing.ID, userID)
		return v, false, err
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, false, fmt.Errorf("rooms: find 1:1 room %s: %w", key, err)
	}
	room := &Room{Name: "", OwnerID: userID, Direct: true, DirectKey: &key}
	now := time.Now().UTC()
	err = s.mirrored(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(room).Error; err != nil {
			return err
		}
		return tx.Create([]Member{
			{RoomID: room.ID, UserID: lo, Role: RoleMember, JoinedAt: now},
			{RoomID: room.ID, UserID: hi, Role: RoleMember, JoinedAt: now},
		}).Error
	}, func() error {
		return s.mirror.Open(ctx, room.ID, lo, hi)
	}, func() error {
		return s.mirror.Drop(ctx, room.ID)
	})
	if sqldb.IsDuplicate(err) {
		// The peer opened the same chat a moment earlier.
		return s.Direct(ctx, userID, peerID)
	}
	if err != nil {
		return nil, false, fmt.Errorf("rooms: create 1:1 room %s: %w", key, err)
	}
	s.changed(ctx, room.ID, []int64{lo, hi}, true)
	v, err := s.view(ctx, room.ID, userID)
	return v, true, err
}

// viewRow is what the view query scans.
type viewRow struct {
	Room
	MemberCount int64
	Role        *string
	Muted       *bool
}

// views selects rooms as seen by userID (role is empty where userID is
// not a member).
func (s *Rooms) views(ctx context.Context, userID int64) *gorm.DB {
	return s.db.WithContext(ctx).Table("rooms").
		Select("rooms.*, (SELECT COUNT(*) FROM members mc WHERE mc.room_id = rooms.id) AS member_count, me.role AS role, me.muted AS muted").
		Joins("LEFT JOIN members me ON me.room_id = rooms.id AND me.user_id = ?", userID)
}

func (s *Rooms) toViews(ctx context.Context, userID int64, rows []viewRow) ([]View, error) {
	out := make([]View, len(rows))
	var direct []int64
	for i, r := range rows {
		out[i] = View{ID: r.ID, Name: r.Name, Description: r.Description, OwnerID: r.OwnerID, Direct: r.Direct,
			HasPassword: r.PasswordHash != "", MemberCount: r.MemberCount, MembersInvite: r.MembersInvite, CreatedAt: r.CreatedAt}
		if r.Role != nil {
			out[i].Role = *r.Role
		}
		if r.Muted != nil {
			out[i].Muted = *r.Muted
		}
		if r.Direct {
			direct = append(direct, r.ID)
		}
	}
	if len(direct) == 0 {
		return out, nil
	}
	// A 1:1 room is named after the other person, which differs per viewer.
	var peers []Member
	err := s.db.WithContext(ctx).Select("room_id", "user_id").
		Where("room_id IN ? AND user_id <> ?", direct, userID).Find(&peers).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: name %d 1:1 rooms: %w", len(direct), err)
	}
	peerOf := map[int64]int64{}
	ids := make([]int64, 0, len(peers))
	for _, p := range peers {
		peerOf[p.RoomID] = p.UserID
		ids = append(ids, p.UserID)
	}
	names, err := s.people.DisplayNames(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("rooms: name %d 1:1 rooms: %w", len(direct), err)
	}
	for i := range out {
		if out[i].Direct {
			out[i].Name = names[peerOf[out[i].ID]] // empty once the other person has left
		}
	}
	return out, nil
}

func (s *Rooms) view(ctx context.Context, roomID, userID int64) (*View, error) {
	var rows []viewRow
	if err := s.views(ctx, userID).Where("rooms.id = ?", roomID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("rooms: read room %d: %w", roomID, err)
	}
	if len(rows) == 0 {
		return nil, api.NotFound("room")
	}
	vs, err := s.toViews(ctx, userID, rows)
	if err != nil {
		return nil, err
	}
	return &vs[0], nil
}

// Mine lists userID's rooms, newest first, each with the user's unread
// count and the last message.
func (s *Rooms) Mine(ctx context.Context, userID int64) ([]View, error) {
	var rows []viewRow
	err := s.views(ctx, userID).Where("me.user_id IS NOT NULL").Order("rooms.id DESC").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: list rooms of %d: %w", userID, err)
	}
	vs, err := s.toViews(ctx, userID, rows)
	if err != nil {
		return nil, err
	}
	if s.live == nil {
		return vs, nil // no real-time side, so no activity (package tests)
	}
	ids := make([]int64, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	act, err := s.live.Activity(ctx, ids, userID)
	if err != nil {
		return nil, err
	}
	for i := range vs {
		a := act[vs[i].ID]
		unread := max(a.Seq-a.Read, 0)
		vs[i].Unread = &unread
		vs[i].UnreadMentions = &a.Mentions
		vs[i].LastMessage = a.Last
	}
	if err := s.withNotices(ctx, vs, func(i int, n *NoticeView) { vs[i].Notice = n }); err != nil {
		return nil, err
	}
	return vs, nil
}

// Search finds group rooms whose name contains q, case-insensitively, in id
// order after cursor. Password rooms are listed; joining them needs it.
func (s *Rooms) Search(ctx context.Context, userID int64, q string, limit int, cursor int64) ([]View, int64, error) {
	q = strings.TrimSpace(q)
	if utf8.RuneCountInString(q) > 100 {
		return nil, 0, api.Validation("q must be at most 100 characters")
	}
	tx := s.views(ctx, userID).Where("rooms.direct = ? AND rooms.id > ?", false, cursor)
	if q != "" {
		tx = tx.Where("LOWER(rooms.name) LIKE ? ESCAPE '!'", "%"+api.EscapeLike(strings.ToLower(q))+"%")
	}
	var rows []viewRow
	if err := tx.Order("rooms.id").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("rooms: search %q: %w", q, err)
	}
	var next int64
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	vs, err := s.toViews(ctx, userID, rows)
	return vs, next, err
}

// Role returns userID's role in roomID: 404 when the room does not exist,
// 403 not_member when the user is not in it.
func (s *Rooms) Role(ctx context.Context, roomID, userID int64) (string, *Room, error) {
	var room Room
	err := s.db.WithContext(ctx).Take(&room, roomID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil, api.NotFound("room")
	}
	if err != nil {
		return "", nil, fmt.Errorf("rooms: read room %d: %w", roomID, err)
	}
	var m Member
	err = s.db.WithContext(ctx).Where("room_id = ? AND user_id = ?", roomID, userID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", &room, api.NotMember()
	}
	if err != nil {
		return "", nil, fmt.Errorf("rooms: read membership of %d in %d: %w", userID, roomID, err)
	}
	return m.Role, &room, nil
}

// IsAdmin reports whether a role may manage the room.
func IsAdmin(role string) bool { return role == RoleOwner || role == RoleAdmin }

// Get returns a room to one of its members.
func (s *Rooms) Get(ctx context.Context, roomID, userID int64) (*View, error) {
	if _, _, err := s.Role(ctx, roomID, userID); err != nil {
		return nil, err
	}
	v, err := s.view(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	if err := s.withNotices(ctx, []View{*v}, func(i int, n *NoticeView) { v.Notice = n }); err != nil {
		return nil, err
	}
	return v, nil
}

// Patch is a partial update; nil fields stay as they are, an empty
// password removes it.
type Patch struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Password    *string `json:"password"`
	// MembersInvite turns on or off letting plain members invite.
	MembersInvite *bool `json:"members_invite"`
}

// Update applies a patch; admins only.
func (s *Rooms) Update(ctx context.Context, roomID, userID int64, p Patch) (*View, error) {
	role, room, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	if !IsAdmin(role) || room.Direct {
		return nil, api.Forbidden("only the room's owner and admins can change it")
	}
	set := map[string]any{}
	if p.Name != nil {
		if set["name"], err = checkName(*p.Name); err != nil {
			return nil, err
		}
	}
	if p.Description != nil {
		if set["description"], err = checkDescription(*p.Description); err != nil {
			return nil, err
		}
	}
	if p.Password != nil {
		if set["password_hash"], err = s.hashPassword(*p.Password); err != nil {
			return nil, err
		}
	}
	if p.MembersInvite != nil {
		set["members_invite"] = *p.MembersInvite
	}
	if len(set) > 0 {
		if err := s.db.WithContext(ctx).Model(room).Updates(set).Error; err != nil {
			return nil, fmt.Errorf("rooms: update room %d: %w", roomID, err)
		}
	}
	if name, ok := set["name"].(string); ok {
		s.announce(ctx, roomID, SystemEvent{Event: EventRenamed, By: userID, Name: name})
	}
	return s.view(ctx, roomID, userID)
}

// Delete removes a room and its memberships; the owner only.
func (s *Rooms) Delete(ctx context.Context, roomID, userID int64) error {
	role, _, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return err
	}
	if role != RoleOwner {
		return api.Forbidden("only the room's owner can delete it")
	}
	var ids []int64
	err = s.mirrored(ctx, func(tx *gorm.DB) error {
		if s.money != nil {
			if err := s.money.CloseFund(tx, roomID); err != nil {
				return err
			}
		}
		if err := tx.Model(&Member{}).Where("room_id = ?", roomID).Pluck("user_id", &ids).Error; err != nil {
			return err
		}
		if err := tx.Where("room_id = ?", roomID).Delete(&Member{}).Error; err != nil {
			return err
		}
		if err := tx.Where("room_id = ?", roomID).Delete(&Invitation{}).Error; err != nil {
			return err
		}
		if err := tx.Where("room_id = ?", roomID).Delete(&Notice{}).Error; err != nil {
			return err
		}
		if err := tx.Where("room_id = ?", roomID).Delete(&InviteLink{}).Error; err != nil {
			return err
		}
		return tx.Delete(&Room{}, roomID).Error
	}, func() error {
		return s.mirror.Drop(ctx, roomID)
	}, func() error {
		return s.mirror.Add(ctx, roomID, ids...)
	})
	if err == nil {
		s.changed(ctx, roomID, ids, false)
		s.departed(ctx, roomID, ids, true)
	}
	return err
}

func (s *Rooms) departed(ctx context.Context, roomID int64, userIDs []int64, deleted bool) {
	if s.money != nil {
		s.money.Departed(ctx, roomID, userIDs, deleted)
	}
}

// Join adds userID to a group room, checking its password if it has one;
// addr is the client's address, for the limit on wrong passwords. A user
// banned from the room is refused. Joining a room one is already in is
// not an error.
func (s *Rooms) Join(ctx context.Context, roomID, userID int64, password, addr string) (*View, error) {
	_, room, err := s.Role(ctx, roomID, userID)
	var ae *api.Error
	switch {
	case err == nil:
		return s.view(ctx, roomID, userID)
	case !errors.As(err, &ae) || ae.Code != "not_member":
		return nil, err
	}
	if room.Direct {
		return nil, api.Forbidden("1:1 chats cannot be joined")
	}
	if err := s.refuseBanned(ctx, roomID, userID); err != nil {
		return nil, err
	}
	if room.PasswordHash != "" {
		if err := s.checkPassword(ctx, room, userID, password, addr); err != nil {
			return nil, err
		}
	}
	err = s.mirrored(ctx, func(tx *gorm.DB) error {
		return tx.Create(&Member{RoomID: roomID, UserID: userID, Role: RoleMember, JoinedAt: time.Now().UTC()}).Error
	}, func() error {
		return s.mirror.Add(ctx, roomID, userID)
	}, func() error {
		return s.mirror.Remove(ctx, roomID, userID)
	})
	if err != nil && !sqldb.IsDuplicate(err) {
		return nil, fmt.Errorf("rooms: join %d to room %d: %w", userID, roomID, err)
	}
	if err == nil {
		s.changed(ctx, roomID, []int64{userID}, true)
		s.announce(ctx, roomID, SystemEvent{Event: EventJoined, User: userID})
	}
	return s.view(ctx, roomID, userID)
}

// Limit names of the wrong-password counters.
const (
	joinUser    = "join-user"
	joinAddress = "join-addr"
)

// checkPassword compares a room password as a counted attempt.
func (s *Rooms) checkPassword(ctx context.Context, room *Room, userID int64, password, addr string) error {
	return s.attempt(ctx, userID, addr, func() error {
		if bcrypt.CompareHashAndPassword([]byte(room.PasswordHash), []byte(password)) != nil {
			return api.Errorf(403, "wrong_password", "the room's password is wrong")
		}
		return nil
	})
}

// attempt runs check as a join attempt: it is counted against the user
// and the address before check runs, so parallel guesses cannot all slip
// under the limit, and given back when check passes.
func (s *Rooms) attempt(ctx context.Context, userID int64, addr string, check func() error) error {
	type held struct{ name, subject string }
	var holds []held
	giveBack := func() error {
		for _, h := range holds {
			if err := s.limits.Give(ctx, h.name, h.subject); err != nil {
				return fmt.Errorf("rooms: give back join attempt: %w", err)
			}
		}
		return nil
	}
	if s.limits != nil {
		for _, c := range []struct {
			held
			rule limit.Rule
		}{{held{joinUser, strconv.FormatInt(userID, 10)}, s.rules.PerUser}, {held{joinAddress, addr}, s.rules.PerAddress}} {
			u, err := s.limits.Take(ctx, c.name, c.subject, c.rule)
			if err != nil {
				return fmt.Errorf("rooms: count join attempt: %w", err)
			}
			if !u.OK {
				if err := giveBack(); err != nil {
					return err
				}
				return &Throttled{u.Wait}
			}
			holds = append(holds, c.held)
		}
	}
	if err := check(); err != nil {
		return err
	}
	return giveBack()
}

// Throttled refuses a join after too many wrong passwords; Wait is how
// long until the window ends.
type Throttled struct{ Wait time.Duration }

func (t *Throttled) Error() string { return "too many failed room joins" }

// removeMember deletes a membership in SQL and Redis together.
func (s *Rooms) removeMember(ctx context.Context, roomID int64, m Member) error {
	err := s.mirrored(ctx, func(tx *gorm.DB) error {
		return tx.Where("room_id = ? AND user_id = ?", roomID, m.UserID).Delete(&Member{}).Error
	}, func() error {
		return s.mirror.Remove(ctx, roomID, m.UserID)
	}, func() error {
		return s.mirror.Add(ctx, roomID, m.UserID)
	})
	if err == nil {
		s.changed(ctx, roomID, []int64{m.UserID}, false)
		s.departed(ctx, roomID, []int64{m.UserID}, false)
	}
	return err
}

// Leave removes the caller from a room. The owner of a group cannot leave
// it (it would have nobody in charge); they hand it over or delete it.
func (s *Rooms) Leave(ctx context.Context, roomID, userID int64) error {
	role, _, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return err
	}
	if role == RoleOwner {
		return api.Conflict("owner_cannot_leave", "the owner cannot leave the room; hand it to another member first (PUT /api/rooms/{id}/owner) or delete it")
	}
	if err := s.removeMember(ctx, roomID, Member{UserID: userID}); err != nil {
		return err
	}
	s.announce(ctx, roomID, SystemEvent{Event: EventLeft, User: userID})
	return nil
}

// member reads targetID's membership, 404 if absent.
func (s *Rooms) member(ctx context.Context, roomID, targetID int64) (*Member, error) {
	var m Member
	err := s.db.WithContext(ctx).Where("room_id = ? AND user_id = ?", roomID, targetID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, api.NotFound("member")
	}
	if err != nil {
		return nil, fmt.Errorf("rooms: read member %d of room %d: %w", targetID, roomID, err)
	}
	return &m, nil
}

// Kick removes targetID and bans them until an admin lifts it. Admins may
// remove members; only the owner may remove an admin; nobody removes the
// owner.
func (s *Rooms) Kick(ctx context.Context, roomID, userID, targetID int64) error {
	role, room, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return err
	}
	if !IsAdmin(role) || room.Direct {
		return api.Forbidden("only the room's owner and admins can remove members")
	}
	if targetID == userID {
		return api.Validation("to remove yourself, leave the room")
	}
	target, err := s.member(ctx, roomID, targetID)
	if err != nil {
		return err
	}
	if target.Role == RoleOwner || (target.Role == RoleAdmin && role != RoleOwner) {
		return api.Forbidden("only the owner can remove an admin, and nobody can remove the owner")
	}
	if err := s.ban(ctx, roomID, userID, targetID); err != nil {
		return err
	}
	s.announce(ctx, roomID, SystemEvent{Event: EventRemoved, User: targetID, By: userID})
	return nil
}

// SetRole makes a member an admin or a plain member; the owner only.
func (s *Rooms) SetRole(ctx context.Context, roomID, userID, targetID int64, newRole string) (*MemberView, error) {
	if newRole != RoleAdmin && newRole != RoleMember {
		return nil, api.Validation(`role must be "admin" or "member"`)
	}
	role, _, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	if role != RoleOwner {
		return nil, api.Forbidden("only the room's owner can change roles")
	}
	target, err := s.member(ctx, roomID, targetID)
	if err != nil {
		return nil, err
	}
	if target.Role == RoleOwner {
		return nil, api.Validation("the owner's role cannot be changed")
	}
	err = s.db.WithContext(ctx).Model(&Member{}).Where("room_id = ? AND user_id = ?", roomID, targetID).Update("role", newRole).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: set role of %d in %d: %w", targetID, roomID, err)
	}
	if target.Role != newRole {
		s.announce(ctx, roomID, SystemEvent{Event: EventRoleChanged, User: targetID, By: userID, Role: newRole})
	}
	ms, err := s.members(ctx, roomID, targetID)
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return &ms[0], nil
}

// TransferOwnership hands a group room to another member, so a treasurer
// can pass the club (and its fund) on; the old owner stays as an admin.
// The owner only.
func (s *Rooms) TransferOwnership(ctx context.Context, roomID, userID, targetID int64) (*View, error) {
	role, room, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	if role != RoleOwner || room.Direct {
		return nil, api.Forbidden("only the owner of a group room can hand it over")
	}
	if targetID == userID {
		return nil, api.Validation("you already own this room")
	}
	if _, err := s.member(ctx, roomID, targetID); err != nil {
		return nil, err
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Only while the caller still owns it: two handovers at once leave
		// one owner.
		res := tx.Model(&Room{}).Where("id = ? AND owner_id = ?", roomID, userID).Update("owner_id", targetID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return api.Conflict("owner_changed", "the room changed hands meanwhile")
		}
		if err := tx.Model(&Member{}).Where("room_id = ? AND user_id = ?", roomID, userID).Update("role", RoleAdmin).Error; err != nil {
			return err
		}
		return tx.Model(&Member{}).Where("room_id = ? AND user_id = ?", roomID, targetID).Update("role", RoleOwner).Error
	})
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, fmt.Errorf("rooms: hand room %d from %d to %d: %w", roomID, userID, targetID, err)
	}
	s.announce(ctx, roomID, SystemEvent{Event: EventOwnerChanged, User: targetID, By: userID})
	return s.view(ctx, roomID, userID)
}

// Members lists a room's members to one of them.
func (s *Rooms) Members(ctx context.Context, roomID, userID int64) ([]MemberView, error) {
	if _, _, err := s.Role(ctx, roomID, userID); err != nil {
		return nil, err
	}
	return s.members(ctx, roomID, 0)
}

// Roster lists a room's members without a viewer (for the system's own
// jobs, such as dues reminders).
func (s *Rooms) Roster(ctx context.Context, roomID int64) ([]MemberView, error) {
	return s.members(ctx, roomID, 0)
}

// members lists a room's members, or only onlyID when it is non-zero.
func (s *Rooms) members(ctx context.Context, roomID, onlyID int64) ([]MemberView, error) {
	var rows []Member
	tx := s.db.WithContext(ctx).Where("room_id = ?", roomID)
	if onlyID != 0 {
		tx = tx.Where("user_id = ?", onlyID)
	}
	if err := tx.Order("joined_at, user_id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("rooms: list members of %d: %w", roomID, err)
	}
	ids := make([]int64, len(rows))
	for i, m := range rows {
		ids[i] = m.UserID
	}
	names, err := s.nameUsers(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("rooms: name members of %d: %w", roomID, err)
	}
	out := make([]MemberView, 0, len(rows))
	for _, m := range rows {
		if n, ok := names[m.UserID]; ok {
			out = append(out, MemberView{UserID: m.UserID, Username: n.username, DisplayName: n.display, Role: m.Role, JoinedAt: m.JoinedAt})
		}
	}
	return out, nil
}
