package rooms

import (
	"context"
	"fmt"
)

// MemberIDsByUsername lists the members of a room whose usernames are
// among usernames (lower case, as stored), for @mentions.
func (s *Rooms) MemberIDsByUsername(ctx context.Context, roomID int64, usernames []string) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Table("members").Joins("JOIN users ON users.id = members.user_id").
		Where("members.room_id = ? AND users.username IN ?", roomID, usernames).
		Order("members.user_id").Pluck("members.user_id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: mentioned members of room %d: %w", roomID, err)
	}
	return ids, nil
}
