package rooms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"moim/api"
	"moim/sqldb"
)

// InviteLink lets whoever holds its code join a room without the room's
// password, until it expires, runs out of uses or an admin revokes it.
type InviteLink struct {
	// Code is 128 random bits in hex: unguessable, and guessing is also
	// rate-limited like wrong room passwords. Hex, not base64, because
	// MySQL's default collation compares case-insensitively.
	Code      string `gorm:"primaryKey;size:32"`
	RoomID    int64  `gorm:"not null;index"`
	CreatedBy int64  `gorm:"not null"`
	// MaxUses is how many users may join by it; 0 is no limit.
	MaxUses   int       `gorm:"not null"`
	Uses      int       `gorm:"not null;default:0"`
	ExpiresAt time.Time `gorm:"not null"`
	RevokedAt *time.Time
	CreatedAt time.Time
}

// States of an invite link, as listed to admins and in join refusals.
const (
	LinkActive  = "active"
	LinkExpired = "expired"
	LinkUsedUp  = "used_up"
	LinkRevoked = "revoked"
)

// InviteLinkView is an invite link as its room's admins see it.
type InviteLinkView struct {
	Code string `json:"code"`
	// URL opens the web client's join page; the HTTP layer fills it in
	// from the request's origin.
	URL       string     `json:"url"`
	RoomID    int64      `json:"room_id"`
	CreatedBy int64      `json:"created_by"`
	MaxUses   int        `json:"max_uses"`
	Uses      int        `json:"uses"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
}

// Bounds of a new link: a week unless asked otherwise, at most 30 days,
// so a forgotten link stops working on its own.
const (
	defaultLinkTTL = 7 * 24 * time.Hour
	minLinkTTL     = time.Minute
	maxLinkTTL     = 30 * 24 * time.Hour
	maxLinkUses    = 10000
	// maxLiveLinks caps a room's active links: a club shares a few.
	maxLiveLinks = 100
)

// InvitePath is the web client's join page for a code, relative to the
// node's origin.
func InvitePath(code string) string { return "/#/invite/" + code }

func (l *InviteLink) state(now time.Time) string {
	switch {
	case l.RevokedAt != nil:
		return LinkRevoked
	case !now.Before(l.ExpiresAt):
		return LinkExpired
	case l.MaxUses > 0 && l.Uses >= l.MaxUses:
		return LinkUsedUp
	}
	return LinkActive
}

func (l *InviteLink) view(now time.Time) InviteLinkView {
	return InviteLinkView{Code: l.Code, RoomID: l.RoomID, CreatedBy: l.CreatedBy, MaxUses: l.MaxUses, Uses: l.Uses,
		ExpiresAt: l.ExpiresAt, RevokedAt: l.RevokedAt, State: l.state(now), CreatedAt: l.CreatedAt}
}

// mayInvite refuses a caller who may not bring people into the room:
// admins may, and plain members too when the room lets them.
func (s *Rooms) mayInvite(ctx context.Context, roomID, userID int64) (*Room, error) {
	role, room, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	if room.Direct || !(IsAdmin(role) || room.MembersInvite) {
		return nil, api.Forbidden("only the room's owner and admins can invite (unless the room lets members invite)")
	}
	return room, nil
}

// CreateInviteLink makes a link into the room; expiresIn 0 is a week,
// maxUses 0 is no limit.
func (s *Rooms) CreateInviteLink(ctx context.Context, roomID, userID int64, expiresIn time.Duration, maxUses int) (*InviteLinkView, error) {
	if expiresIn == 0 {
		expiresIn = defaultLinkTTL
	}
	if expiresIn < minLinkTTL || expiresIn > maxLinkTTL {
		return nil, api.Validation("expires_in_s must be 60 to 2592000 seconds (30 days), or 0 for a week")
	}
	if maxUses < 0 || maxUses > maxLinkUses {
		return nil, api.Validation(fmt.Sprintf("max_uses must be 0 (no limit) to %d", maxLinkUses))
	}
	if _, err := s.mayInvite(ctx, roomID, userID); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	var live int64
	if err := s.db.WithContext(ctx).Model(&InviteLink{}).
		Where("room_id = ? AND revoked_at IS NULL AND expires_at > ? AND (max_uses = 0 OR uses < max_uses)", roomID, now).
		Count(&live).Error; err != nil {
		return nil, fmt.Errorf("rooms: count invite links of %d: %w", roomID, err)
	}
	if live >= maxLiveLinks {
		return nil, api.Conflict("too_many_links", fmt.Sprintf("a room has at most %d active invite links; revoke some first", maxLiveLinks))
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("rooms: invite link code: %w", err)
	}
	l := &InviteLink{Code: hex.EncodeToString(raw[:]), RoomID: roomID, CreatedBy: userID,
		MaxUses: maxUses, ExpiresAt: now.Add(expiresIn).Truncate(time.Second), CreatedAt: now}
	if err := s.db.WithContext(ctx).Create(l).Error; err != nil {
		return nil, fmt.Errorf("rooms: create invite link for %d: %w", roomID, err)
	}
	v := l.view(now)
	return &v, nil
}

// InviteLinks lists a room's links, newest first, to its admins.
func (s *Rooms) InviteLinks(ctx context.Context, roomID, userID int64) ([]InviteLinkView, error) {
	if err := s.requireAdmin(ctx, roomID, userID); err != nil {
		return nil, err
	}
	var links []InviteLink
	if err := s.db.WithContext(ctx).Where("room_id = ?", roomID).Order("created_at DESC, code").Limit(200).Find(&links).Error; err != nil {
		return nil, fmt.Errorf("rooms: list invite links of %d: %w", roomID, err)
	}
	now := time.Now()
	out := make([]InviteLinkView, len(links))
	for i := range links {
		out[i] = links[i].view(now)
	}
	return out, nil
}

// RevokeInviteLink ends a link for good; admins only. A revoked link
// stays listed, and joining by it says it was revoked.
func (s *Rooms) RevokeInviteLink(ctx context.Context, roomID, userID int64, code string) error {
	if err := s.requireAdmin(ctx, roomID, userID); err != nil {
		return err
	}
	now := time.Now().UTC()
	res := s.db.WithContext(ctx).Model(&InviteLink{}).Where("code = ? AND room_id = ?", code, roomID).
		Where("revoked_at IS NULL").Update("revoked_at", &now)
	if res.Error != nil {
		return fmt.Errorf("rooms: revoke invite link of %d: %w", roomID, res.Error)
	}
	if res.RowsAffected == 0 {
		var n int64
		if err := s.db.WithContext(ctx).Model(&InviteLink{}).Where("code = ? AND room_id = ?", code, roomID).Count(&n).Error; err != nil {
			return fmt.Errorf("rooms: read invite link of %d: %w", roomID, err)
		}
		if n == 0 {
			return api.NotFound("invite link")
		}
	}
	return nil
}

// linkRefusal is the error joining by a link in state gets.
func linkRefusal(state string) error {
	switch state {
	case LinkExpired:
		return api.Errorf(410, "invite_expired", "this invite link has expired; ask for a new one")
	case LinkUsedUp:
		return api.Errorf(410, "invite_used_up", "this invite link has been used as many times as it allows; ask for a new one")
	case LinkRevoked:
		return api.Errorf(410, "invite_revoked", "this invite link was revoked by the room's admins")
	}
	return api.Errorf(404, "invite_not_found", "no invite link has this code")
}

// JoinByLink adds userID to the link's room without its password. Every
// refused attempt counts against the same limits as wrong room
// passwords (addr is the client's address), so codes cannot be guessed
// online; a user banned from the room is refused; a member already in
// it uses nothing up.
func (s *Rooms) JoinByLink(ctx context.Context, code string, userID int64, addr string) (*View, error) {
	var (
		link   InviteLink
		joined bool
	)
	err := s.attempt(ctx, userID, addr, func() error {
		err := s.db.WithContext(ctx).Where("code = ?", code).Take(&link).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return linkRefusal("")
		}
		if err != nil {
			return fmt.Errorf("rooms: read invite link: %w", err)
		}
		if _, _, err := s.Role(ctx, link.RoomID, userID); err == nil {
			return nil
		} else if ae := (*api.Error)(nil); !errors.As(err, &ae) || ae.Code != "not_member" {
			return err
		}
		if err := s.refuseBanned(ctx, link.RoomID, userID); err != nil {
			return err
		}
		if st := link.state(time.Now()); st != LinkActive {
			return linkRefusal(st)
		}
		err = s.mirrored(ctx, func(tx *gorm.DB) error {
			// Counted only while the link still allows it: two joins
			// racing for a link's last use leave one of them out.
			res := tx.Model(&InviteLink{}).Where("code = ? AND revoked_at IS NULL AND expires_at > ? AND (max_uses = 0 OR uses < max_uses)",
				code, time.Now().UTC()).Update("uses", gorm.Expr("uses + 1"))
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return linkRefusal(LinkUsedUp)
			}
			joined = true
			return tx.Create(&Member{RoomID: link.RoomID, UserID: userID, Role: RoleMember, JoinedAt: time.Now().UTC()}).Error
		}, func() error {
			return s.mirror.Add(ctx, link.RoomID, userID)
		}, func() error {
			return s.mirror.Remove(ctx, link.RoomID, userID)
		})
		if sqldb.IsDuplicate(err) {
			// Joined by other means meanwhile; the use was not counted.
			joined, err = false, nil
		}
		return err
	})
	var th *Throttled
	var ae *api.Error
	switch {
	case errors.As(err, &th), errors.As(err, &ae):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("rooms: join %d by invite link: %w", userID, err)
	}
	if joined {
		s.changed(ctx, link.RoomID, []int64{userID}, true)
		s.announce(ctx, link.RoomID, SystemEvent{Event: EventJoinedByLink, User: userID, By: link.CreatedBy})
	}
	return s.view(ctx, link.RoomID, userID)
}
