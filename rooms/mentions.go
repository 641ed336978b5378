package rooms

import (
	"context"
	"fmt"
)

// MemberIDsByUsername lists the members of a room whose usernames are
// among usernames (lower case, as stored), for @mentions.
func (s *Rooms) MemberIDsByUsername(ctx context.Context, roomID int64, usernames []string) ([]int64, error) {
	users, err := s.people.UserIDs(ctx, usernames)
	if err != nil {
		return nil, fmt.Errorf("rooms: mentioned users in room %d: %w", roomID, err)
	}
	if len(users) == 0 {
		return nil, nil
	}
	var ids []int64
	err = s.db.WithContext(ctx).Model(&Member{}).Where("room_id = ? AND user_id IN ?", roomID, users).
		Order("user_id").Pluck("user_id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: mentioned members of room %d: %w", roomID, err)
	}
	return ids, nil
}
