package rooms

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gorm.io/gorm"
)

// MemoryMirror is the copy of membership a single node keeps in memory,
// built from SQL at start and changed with every membership change.
type MemoryMirror struct {
	mu    sync.RWMutex
	rooms map[int64]map[int64]struct{}
	built bool
}

// NewMemoryMirror returns an empty mirror; Rebuild fills it.
func NewMemoryMirror() *MemoryMirror {
	return &MemoryMirror{rooms: map[int64]map[int64]struct{}{}}
}

// Has reports whether userID is in roomID.
func (m *MemoryMirror) Has(roomID, userID int64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.rooms[roomID][userID]
	return ok
}

// Open starts a new room with its first members.
func (m *MemoryMirror) Open(ctx context.Context, roomID int64, userIDs ...int64) error {
	return m.Add(ctx, roomID, userIDs...)
}

// Add puts users into a room.
func (m *MemoryMirror) Add(_ context.Context, roomID int64, userIDs ...int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.add(roomID, userIDs...)
	return nil
}

func (m *MemoryMirror) add(roomID int64, userIDs ...int64) {
	set := m.rooms[roomID]
	if set == nil {
		set = map[int64]struct{}{}
		m.rooms[roomID] = set
	}
	for _, u := range userIDs {
		set[u] = struct{}{}
	}
}

// Remove takes a user out of a room.
func (m *MemoryMirror) Remove(_ context.Context, roomID, userID int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rooms[roomID], userID)
	return nil
}

// Drop forgets a deleted room.
func (m *MemoryMirror) Drop(_ context.Context, roomID int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rooms, roomID)
	return nil
}

// Rebuild loads every membership from SQL, once: afterwards the mirror
// changes only with the room changes of this node, the only one.
func (m *MemoryMirror) Rebuild(ctx context.Context, db *gorm.DB) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.built {
		return 0, nil
	}
	var copied int
	var batch []Member
	err := db.WithContext(ctx).Order("room_id, user_id").FindInBatches(&batch, 5000, func(*gorm.DB, int) error {
		for _, mb := range batch {
			m.add(mb.RoomID, mb.UserID)
		}
		copied += len(batch)
		return nil
	}).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return copied, fmt.Errorf("rooms: load memberships after %d: %w", copied, err)
	}
	m.built = true
	return copied, nil
}
