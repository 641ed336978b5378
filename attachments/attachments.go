// Package attachments keeps the files and photos members attach to
// messages and spends: uploads are sniffed from their bytes, images are
// re-encoded without metadata and given a thumbnail, each room has a
// quota, and only the room's members read them back. Metadata lives in
// SQL beside the rooms; the bytes in Blobs (GridFS, or the data
// directory).
package attachments

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"moim/api"
	"moim/chatlog"
	"moim/rooms"
)

// MaxSize is the largest file a member may upload: 10 MB, a phone photo
// at full resolution with room to spare, and what the API promises.
const MaxSize = 10 << 20

// Rooms answers whether a user is in a room.
type Rooms interface {
	// Role is the user's role in the room; an api error (404, 403
	// not_member) when the room is missing or the user is not in it.
	Role(ctx context.Context, roomID, userID int64) (string, error)
}

// Attachments is the attachment store.
type Attachments struct {
	db    *gorm.DB
	blobs Blobs
	rooms Rooms
	quota int64
	live  Live
}

// Live is the real-time side (the hub) as attachments sees it.
type Live interface {
	// Publish sends an unstored event to a room's live connections.
	Publish(ctx context.Context, roomID int64, event []byte) error
}

// UseLive lets a deletion reach the room's live connections at once, so
// members' clients stop showing the file without asking for it again.
// Call it before serving.
func (a *Attachments) UseLive(l Live) { a.live = l }

// New stores metadata in db and bytes in blobs; quota caps the bytes
// (files and thumbnails) one room may hold.
func New(db *gorm.DB, blobs Blobs, rooms Rooms, quota int64) *Attachments {
	return &Attachments{db: db, blobs: blobs, rooms: rooms, quota: quota}
}

// Record is one upload's metadata row.
type Record struct {
	ID     string `gorm:"primaryKey;size:32"`
	RoomID int64  `gorm:"not null;index:idx_attachments_room"`
	UserID int64  `gorm:"not null"`
	Name   string `gorm:"size:255;not null"`
	Type   string `gorm:"size:100;not null"`
	Size   int64  `gorm:"not null"`
	Kind   string `gorm:"size:8;not null"`
	Width  int
	Height int
	// ThumbSize is the thumbnail's bytes (0: none); it counts against
	// the room's quota too.
	ThumbSize int64 `gorm:"not null"`
	// ThumbType is the thumbnail's media type: JPEG, or PNG when the
	// image has transparency.
	ThumbType string `gorm:"size:20"`
	CreatedAt time.Time
	// RemovedAt marks an upload its uploader or a room admin deleted: the
	// bytes are gone, Size and ThumbSize are zero so the quota is
	// released, and the row stays so messages carrying it read as a
	// deleted file (410 gone) rather than an unknown one.
	RemovedAt *time.Time
}

// TableName keeps the table's name independent of the type's.
func (Record) TableName() string { return "attachments" }

// Migrate creates or updates the attachments table.
func (a *Attachments) Migrate() error {
	if err := a.db.AutoMigrate(&Record{}); err != nil {
		return fmt.Errorf("attachments: migrate: %w", err)
	}
	return nil
}

// Meta is the metadata a message or a spend carries.
func (r *Record) Meta() *chatlog.Attachment {
	return &chatlog.Attachment{ID: r.ID, Name: r.Name, Type: r.Type, Size: r.Size, Kind: r.Kind, Width: r.Width, Height: r.Height}
}

// View is an upload as the API answers it.
type View struct {
	chatlog.Attachment
	Room      int64     `json:"room"`
	From      int64     `json:"from"`
	Thumbnail bool      `json:"thumbnail"`
	CreatedAt time.Time `json:"created_at"`
}

func (r *Record) view() View {
	return View{Attachment: *r.Meta(), Room: r.RoomID, From: r.UserID, Thumbnail: r.ThumbSize > 0, CreatedAt: r.CreatedAt}
}

// ErrTooLarge is an upload over MaxSize.
var ErrTooLarge = api.Errorf(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a file may be at most %d MB", MaxSize>>20))

// Upload keeps a member's file for a room and returns its metadata.
func (a *Attachments) Upload(ctx context.Context, roomID, userID int64, name string, raw []byte) (View, error) {
	if _, err := a.rooms.Role(ctx, roomID, userID); err != nil {
		return View{}, err
	}
	if len(raw) > MaxSize {
		return View{}, ErrTooLarge
	}
	if len(raw) == 0 {
		return View{}, api.Validation("the file is empty")
	}
	id, err := newID()
	if err != nil {
		return View{}, err
	}
	r := Record{ID: id, RoomID: roomID, UserID: userID, Name: SafeName(name), Kind: chatlog.AttachFile,
		Type: sniff(raw), Size: int64(len(raw))}
	data, thumb := raw, []byte(nil)
	if strings.HasPrefix(r.Type, "image/") {
		if p, ok := processImage(raw, r.Type); ok {
			data, thumb = p.data, p.thumb
			r.Kind, r.Type, r.Size, r.Width, r.Height = chatlog.AttachImage, p.typ, int64(len(p.data)), p.width, p.height
			r.ThumbSize, r.ThumbType = int64(len(thumb)), p.thumbType
			r.Name = withExt(r.Name, p.ext)
		} else {
			// An image that does not decode is kept as a file, never shown inline.
			r.Type = "application/octet-stream"
		}
	}
	if err := a.withinQuota(ctx, roomID, r.Size+r.ThumbSize); err != nil {
		return View{}, err
	}
	if err := a.blobs.Put(ctx, id, data); err != nil {
		return View{}, err
	}
	if thumb != nil {
		if err := a.blobs.Put(ctx, thumbKey(id), thumb); err != nil {
			_ = a.blobs.Delete(ctx, id)
			return View{}, err
		}
	}
	// The row comes last: a blob without a row is unreachable garbage,
	// a row without its blob would be a broken message.
	if err := a.db.WithContext(ctx).Create(&r).Error; err != nil {
		_ = a.blobs.Delete(ctx, id)
		_ = a.blobs.Delete(ctx, thumbKey(id))
		return View{}, fmt.Errorf("attachments: record %s: %w", id, err)
	}
	return r.view(), nil
}

// withinQuota refuses an upload that would take a room past its quota.
// Two uploads racing may both pass: the quota can be overshot by at most
// the uploads in flight, which is fine for a cap against abuse.
func (a *Attachments) withinQuota(ctx context.Context, roomID, more int64) error {
	if a.quota <= 0 {
		return nil
	}
	var used int64
	if err := a.db.WithContext(ctx).Model(&Record{}).Where("room_id = ?", roomID).
		Select("COALESCE(SUM(size + thumb_size), 0)").Scan(&used).Error; err != nil {
		return fmt.Errorf("attachments: usage of room %d: %w", roomID, err)
	}
	if used+more > a.quota {
		return api.Errorf(http.StatusRequestEntityTooLarge, "quota_exceeded",
			fmt.Sprintf("this room's files would take %.1f MB of its %d MB; delete old ones or ask the operator for more", float64(used+more)/(1<<20), a.quota>>20))
	}
	return nil
}

func thumbKey(id string) string { return id + "-thumb" }

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("attachments: random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// validID is a 32-digit lower-case hex id, so a key never names a path.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ErrGone answers for an upload that was deleted.
var ErrGone = api.Errorf(http.StatusGone, "gone", "this file was deleted")

// find reads an attachment's row for a member of its room, with the
// member's role: 404 when unknown, 403 not_member for anyone else.
func (a *Attachments) find(ctx context.Context, id string, userID int64) (*Record, string, error) {
	if !validID(id) {
		return nil, "", api.NotFound("attachment")
	}
	var r Record
	err := a.db.WithContext(ctx).Take(&r, "id = ?", id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, "", api.NotFound("attachment")
	}
	if err != nil {
		return nil, "", fmt.Errorf("attachments: read %s: %w", id, err)
	}
	role, err := a.rooms.Role(ctx, r.RoomID, userID)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, "", api.NotFound("attachment") // its room was deleted
		}
		return nil, "", err
	}
	return &r, role, nil
}

// Delete removes an upload's bytes for its uploader or an admin of its
// room, releasing its share of the room's quota; messages and spends
// that carry it then get 410 gone for it.
func (a *Attachments) Delete(ctx context.Context, id string, userID int64) error {
	r, role, err := a.find(ctx, id, userID)
	if err != nil {
		return err
	}
	if r.RemovedAt != nil {
		return ErrGone
	}
	if r.UserID != userID && !rooms.IsAdmin(role) {
		return api.Forbidden("only the uploader or a room admin may delete a file")
	}
	// The row is marked first: a blob left behind by a failure below is
	// unreachable garbage, while bytes served after a delete would not be.
	res := a.db.WithContext(ctx).Model(&Record{}).Where("id = ? AND removed_at IS NULL", id).
		Updates(map[string]any{"removed_at": time.Now().UTC(), "size": 0, "thumb_size": 0})
	if res.Error != nil {
		return fmt.Errorf("attachments: delete %s: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrGone // a concurrent delete won
	}
	_ = a.blobs.Delete(ctx, id)
	if r.ThumbSize > 0 {
		_ = a.blobs.Delete(ctx, thumbKey(id))
	}
	a.publishDeleted(ctx, r.RoomID, id)
	return nil
}

// publishDeleted tells the room's live connections that an attachment is
// gone. Best effort: a client that misses it learns the same from the
// 410 when it next asks for the bytes.
func (a *Attachments) publishDeleted(ctx context.Context, roomID int64, id string) {
	if a.live == nil {
		return
	}
	ev, err := json.Marshal(deletedEvent{Type: "attachment_deleted", Room: roomID, Attachment: deletedRef{ID: id}})
	if err == nil {
		_ = a.live.Publish(ctx, roomID, ev)
	}
}

// deletedEvent is the attachment_deleted event; the attachment is named
// by id only, the shape messages carry it in.
type deletedEvent struct {
	Type       string     `json:"type"`
	Room       int64      `json:"room"`
	Attachment deletedRef `json:"attachment"`
}

type deletedRef struct {
	ID string `json:"id"`
}

// Attachment is the metadata of attachment id when userID uploaded it to
// roomID, for a message to carry; an api error otherwise.
func (a *Attachments) Attachment(ctx context.Context, id string, roomID, userID int64) (*chatlog.Attachment, error) {
	return a.meta(ctx, id, "attachment must be a file you uploaded to this room and did not delete",
		"id = ? AND room_id = ? AND user_id = ? AND removed_at IS NULL", id, roomID, userID)
}

// Receipt is the metadata of upload id when it was uploaded to roomID
// (by any member: whoever kept the paper may photograph it), for a spend
// to name as its receipt; an api error otherwise.
func (a *Attachments) Receipt(ctx context.Context, id string, roomID int64) (*chatlog.Attachment, error) {
	return a.meta(ctx, id, "receipt_attachment_id must be a file uploaded to this room and not deleted",
		"id = ? AND room_id = ? AND removed_at IS NULL", id, roomID)
}

// meta reads the upload that where selects; refusal is the validation
// message when there is none.
func (a *Attachments) meta(ctx context.Context, id, refusal, where string, args ...any) (*chatlog.Attachment, error) {
	if !validID(id) {
		return nil, api.Validation(refusal)
	}
	var r Record
	err := a.db.WithContext(ctx).Take(&r, append([]any{where}, args...)...).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, api.Validation(refusal)
	}
	if err != nil {
		return nil, fmt.Errorf("attachments: read %s: %w", id, err)
	}
	return r.Meta(), nil
}

// sniff is the media type of the bytes, whatever the client claimed.
func sniff(raw []byte) string {
	t := http.DetectContentType(raw)
	if t == "image/webp" || t == "image/jpeg" || t == "image/png" || t == "image/gif" {
		return t
	}
	// Anything a browser might run or render as a page is a plain
	// download: HTML, XML (SVG) and scripts never get their own type.
	switch base, _, _ := strings.Cut(t, ";"); {
	case base == "text/html", base == "text/xml", strings.Contains(base, "xml"), strings.Contains(base, "javascript"):
		return "application/octet-stream"
	}
	return t
}

// maxName is the longest file name kept, in characters.
const maxName = 120

// SafeName is a client's file name made safe to store and show: its last
// path element, without control, format or path characters, at most
// maxName characters with its extension kept; "file" when nothing is left.
func SafeName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base("/" + name)
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || api.UnsafeNameRune(r) || strings.ContainsRune(`/\:*?"<>|`, r) {
			return -1
		}
		return r
	}, name)
	name = strings.Trim(strings.TrimSpace(name), ".")
	if name == "" {
		return "file"
	}
	if utf8.RuneCountInString(name) > maxName {
		ext := path.Ext(name)
		if utf8.RuneCountInString(ext) > 10 {
			ext = ""
		}
		r := []rune(strings.TrimSuffix(name, ext))
		name = string(r[:maxName-utf8.RuneCountInString(ext)]) + ext
	}
	return name
}

// withExt gives name the extension of the bytes it now holds.
func withExt(name, ext string) string {
	old := path.Ext(name)
	if strings.EqualFold(old, ext) || (ext == ".jpg" && strings.EqualFold(old, ".jpeg")) {
		return name
	}
	return strings.TrimSuffix(name, old) + ext
}
