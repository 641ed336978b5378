package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
)

// Invitation asks a user to join a room. Someone who has not put the
// inviter among their contacts is not pulled into a room by them: they
// get an invitation to accept or decline.
type Invitation struct {
	ID        int64 `gorm:"primaryKey"`
	RoomID    int64 `gorm:"not null;uniqueIndex:invitations_room_user"`
	UserID    int64 `gorm:"not null;uniqueIndex:invitations_room_user;index"`
	InviterID int64 `gorm:"not null"`
	CreatedAt time.Time
}

// InvitationView is an invitation as its invitee sees it.
type InvitationView struct {
	ID          int64     `json:"id"`
	RoomID      int64     `json:"room_id"`
	RoomName    string    `json:"room_name"`
	InviterID   int64     `json:"inviter_id"`
	InviterName string    `json:"inviter_name"`
	CreatedAt   time.Time `json:"created_at"`
	// UserID is the invitee, who is the one reading it.
	UserID int64 `json:"-"`
}

// InviteResult says what became of each user asked into a room.
type InviteResult struct {
	// Added had the inviter among their contacts and are members now.
	Added []int64 `json:"added"`
	// Invited got an invitation (again, if they had one).
	Invited []int64 `json:"invited"`
	// AlreadyMembers were in the room before.
	AlreadyMembers []int64 `json:"already_members"`
	// Banned were removed from the room and stay out until an admin
	// lifts the ban; they are neither added nor invited.
	Banned []int64 `json:"banned"`
}

// maxInvite caps one invitation request; a club brings people in by the
// dozen, and a bigger list is a script that should page.
const maxInvite = 100

// AddAnyone makes room creation's member_ids and invitations add every
// user at once, contact or not, as before invitations existed: for load
// tests that build rooms of strangers (MOIM_INVITE_RULE=anyone).
func (s *Rooms) AddAnyone() { s.addAnyone = true }

// Invite brings users into a room: those who have the inviter among their
// contacts are added at once, the others are invited. Admins only, unless
// the room lets members invite.
func (s *Rooms) Invite(ctx context.Context, roomID, inviterID int64, userIDs []int64) (*InviteResult, error) {
	if len(userIDs) < 1 || len(userIDs) > maxInvite {
		return nil, api.Validation(fmt.Sprintf("user_ids must list 1 to %d users", maxInvite))
	}
	room, err := s.mayInvite(ctx, roomID, inviterID)
	if err != nil {
		return nil, err
	}
	ids := uniqueOthers(userIDs, inviterID)
	if err := s.checkUsersExist(ctx, ids); err != nil {
		return nil, err
	}
	res := &InviteResult{Added: []int64{}, Invited: []int64{}, AlreadyMembers: []int64{}, Banned: []int64{}}
	if len(ids) == 0 {
		return res, nil
	}
	if err := s.db.WithContext(ctx).Model(&Member{}).Where("room_id = ? AND user_id IN ?", roomID, ids).
		Pluck("user_id", &res.AlreadyMembers).Error; err != nil {
		return nil, fmt.Errorf("rooms: members of room %d among %d invitees: %w", roomID, len(ids), err)
	}
	if err := s.db.WithContext(ctx).Model(&Ban{}).Where("room_id = ? AND user_id IN ?", roomID, ids).
		Pluck("user_id", &res.Banned).Error; err != nil {
		return nil, fmt.Errorf("rooms: bans of room %d among %d invitees: %w", roomID, len(ids), err)
	}
	in := map[int64]bool{}
	for _, id := range append(res.AlreadyMembers, res.Banned...) {
		in[id] = true
	}
	var rest []int64
	for _, id := range ids {
		if !in[id] {
			rest = append(rest, id)
		}
	}
	add, invite, err := s.byContact(ctx, inviterID, rest)
	if err != nil {
		return nil, err
	}
	if res.Added, err = s.addMembers(ctx, roomID, add); err != nil {
		return nil, err
	}
	for _, id := range res.Added {
		s.announce(ctx, roomID, SystemEvent{Event: EventAdded, User: id, By: inviterID})
	}
	if err := s.invite(ctx, room, inviterID, invite); err != nil {
		return nil, err
	}
	res.Invited = append(res.Invited, invite...)
	return res, nil
}

// byContact splits users into those who have inviterID among their
// contacts (added at once) and the others (invited).
func (s *Rooms) byContact(ctx context.Context, inviterID int64, ids []int64) (add, invite []int64, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	if s.addAnyone {
		return ids, nil, nil
	}
	knows, err := s.people.WhoHaveContact(ctx, inviterID, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("rooms: invite to %d: %w", len(ids), err)
	}
	known := map[int64]bool{}
	for _, id := range knows {
		known[id] = true
	}
	for _, id := range ids {
		if known[id] {
			add = append(add, id)
		} else {
			invite = append(invite, id)
		}
	}
	return add, invite, nil
}

// addMembers makes users plain members of a room (in SQL and the
// mirror), clearing their invitations, and returns those who were not
// members already.
func (s *Rooms) addMembers(ctx context.Context, roomID int64, ids []int64) ([]int64, error) {
	added := []int64{}
	if len(ids) == 0 {
		return added, nil
	}
	now := time.Now().UTC()
	err := s.mirrored(ctx, func(tx *gorm.DB) error {
		added = added[:0]
		for _, id := range ids {
			// One by one: a user who joined meanwhile is skipped, not an error.
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).
				Create(&Member{RoomID: roomID, UserID: id, Role: RoleMember, JoinedAt: now})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 1 {
				added = append(added, id)
			}
		}
		return tx.Where("room_id = ? AND user_id IN ?", roomID, ids).Delete(&Invitation{}).Error
	}, func() error {
		return s.mirror.Add(ctx, roomID, ids...)
	}, func() error {
		return s.removeFromMirror(ctx, roomID, added)
	})
	if err != nil {
		return nil, fmt.Errorf("rooms: add %d members to room %d: %w", len(ids), roomID, err)
	}
	s.changed(ctx, roomID, added, true)
	return added, nil
}

// removeFromMirror undoes a mirror Add of users a failed commit did not add.
func (s *Rooms) removeFromMirror(ctx context.Context, roomID int64, ids []int64) error {
	var errs []error
	for _, id := range ids {
		errs = append(errs, s.mirror.Remove(ctx, roomID, id))
	}
	return errors.Join(errs...)
}

// invite records invitations (an existing one stays as it was) and
// tells the invitees' live connections.
func (s *Rooms) invite(ctx context.Context, room *Room, inviterID int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	invs := make([]Invitation, len(ids))
	for i, id := range ids {
		invs[i] = Invitation{RoomID: room.ID, UserID: id, InviterID: inviterID}
	}
	db := s.db.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&invs).Error; err != nil {
		return fmt.Errorf("rooms: invite %d users to room %d: %w", len(ids), room.ID, err)
	}
	var views []InvitationView
	if err := s.invitations(ctx).Where("invitations.room_id = ? AND invitations.user_id IN ?", room.ID, ids).
		Scan(&views).Error; err != nil {
		return fmt.Errorf("rooms: read invitations to room %d: %w", room.ID, err)
	}
	views, err := s.nameInviters(ctx, views)
	if err != nil {
		return err
	}
	if s.live == nil {
		return nil
	}
	for _, v := range views {
		ev, err := json.Marshal(struct {
			Type       string         `json:"type"`
			Invitation InvitationView `json:"invitation"`
		}{"invitation", v})
		if err != nil {
			return fmt.Errorf("rooms: encode invitation %d: %w", v.ID, err)
		}
		s.live.Notify(ctx, []int64{v.UserID}, ev)
	}
	return nil
}

// invitations selects invitation views, but for the inviter's name
// (nameInviters).
func (s *Rooms) invitations(ctx context.Context) *gorm.DB {
	return s.db.WithContext(ctx).Table("invitations").
		Select("invitations.id, invitations.room_id, rooms.name AS room_name, invitations.inviter_id, " +
			"invitations.created_at, invitations.user_id").
		Joins("JOIN rooms ON rooms.id = invitations.room_id")
}

// nameInviters fills in the inviters' names; an invitation from a user
// who no longer exists is left out.
func (s *Rooms) nameInviters(ctx context.Context, views []InvitationView) ([]InvitationView, error) {
	if len(views) == 0 {
		return views, nil
	}
	ids := make([]int64, len(views))
	for i, v := range views {
		ids[i] = v.InviterID
	}
	names, err := s.people.DisplayNames(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("rooms: name %d inviters: %w", len(ids), err)
	}
	out := views[:0]
	for _, v := range views {
		if name, ok := names[v.InviterID]; ok {
			v.InviterName = name
			out = append(out, v)
		}
	}
	return out, nil
}

// Invitations lists a user's pending invitations, oldest first.
func (s *Rooms) Invitations(ctx context.Context, userID int64) ([]InvitationView, error) {
	out := []InvitationView{}
	err := s.invitations(ctx).Where("invitations.user_id = ?", userID).
		// One who joined by other means (search, the password) no longer
		// needs the invitation.
		Where("NOT EXISTS (SELECT 1 FROM members m WHERE m.room_id = invitations.room_id AND m.user_id = invitations.user_id)").
		Order("invitations.id").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: invitations of %d: %w", userID, err)
	}
	return s.nameInviters(ctx, out)
}

// pending reads one of userID's invitations, 404 when it is not theirs.
func (s *Rooms) pending(ctx context.Context, invitationID, userID int64) (*Invitation, error) {
	var inv Invitation
	err := s.db.WithContext(ctx).Where("id = ? AND user_id = ?", invitationID, userID).Take(&inv).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, api.NotFound("invitation")
	}
	if err != nil {
		return nil, fmt.Errorf("rooms: read invitation %d: %w", invitationID, err)
	}
	return &inv, nil
}

// Accept makes the invitee a member and announces it in the room.
func (s *Rooms) Accept(ctx context.Context, invitationID, userID int64) (*View, error) {
	inv, err := s.pending(ctx, invitationID, userID)
	if err != nil {
		return nil, err
	}
	// Removed after being invited: the ban wins until an admin lifts it.
	if err := s.refuseBanned(ctx, inv.RoomID, userID); err != nil {
		return nil, err
	}
	added, err := s.addMembers(ctx, inv.RoomID, []int64{userID})
	if err != nil {
		return nil, err
	}
	if len(added) == 1 {
		s.announce(ctx, inv.RoomID, SystemEvent{Event: EventInvitationAccepted, User: userID, By: inv.InviterID})
	}
	return s.view(ctx, inv.RoomID, userID)
}

// Decline drops the invitation; the inviter is not told.
func (s *Rooms) Decline(ctx context.Context, invitationID, userID int64) error {
	res := s.db.WithContext(ctx).Where("id = ? AND user_id = ?", invitationID, userID).Delete(&Invitation{})
	if res.Error != nil {
		return fmt.Errorf("rooms: decline invitation %d: %w", invitationID, res.Error)
	}
	if res.RowsAffected == 0 {
		return api.NotFound("invitation")
	}
	return nil
}
