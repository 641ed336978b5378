package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"moim/chatlog"
)

// Config tunes a Notifier. Zero fields take the defaults in brackets.
type Config struct {
	// Keys is the VAPID pair every push is signed with.
	Keys Keys
	// Subject is the contact push services see in the VAPID token
	// (mailto: or https:) [mailto:admin@localhost].
	Subject string
	// Window is how long a room's messages are gathered into one push
	// per member [5s] (docs/PROTOCOL.md, Push notifications).
	Window time.Duration
	// Workers post to push services concurrently [8]; Queue bounds what
	// waits for them, and the accepted messages waiting for the gatherer
	// [4096]. Past either, pushes are dropped and counted, never waited
	// for.
	Workers, Queue int
	// Timeout bounds one post to a push service [10s].
	Timeout time.Duration
	// TTL is how long a push service keeps a push for an unreachable
	// device [24h].
	TTL time.Duration
	// Refresh is how often the rooms with a subscribed member are
	// reloaded from SQL, which bounds how long another node's new
	// subscription or membership goes unseen here [1s].
	Refresh time.Duration
	// AllowLoopback lets endpoints be http on a loopback address: tests
	// with a local push service only.
	AllowLoopback bool
}

func (c *Config) defaults() {
	if c.Subject == "" {
		c.Subject = "mailto:admin@localhost"
	}
	if c.Window <= 0 {
		c.Window = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Queue <= 0 {
		c.Queue = 4096
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.TTL <= 0 {
		c.TTL = 24 * time.Hour
	}
	if c.Refresh <= 0 {
		c.Refresh = time.Second
	}
}

// Presence tells which users have a live connection on any node.
type Presence interface {
	Online(ctx context.Context, users []int64) (map[int64]bool, error)
}

// Notifier gathers what happened for members who are away and posts it
// to their push subscriptions, off the send path.
type Notifier struct {
	cfg      Config
	db       *gorm.DB
	log      *slog.Logger
	client   *http.Client
	presence Presence
	metrics  *metrics

	// in carries accepted messages and user events to the gatherer.
	in chan event
	// resolve carries due room batches to the resolvers; deliveries
	// carries single posts to the workers.
	resolve    chan *batch
	deliveries chan delivery
	stop       context.CancelFunc
	wg         sync.WaitGroup

	// rooms holds the rooms with a member holding a subscription
	// (interest.go); refreshMu serializes its reloads.
	rooms     atomic.Pointer[map[int64]bool]
	refreshMu sync.Mutex
}

// event is an accepted message (draft, seq) or a payload for users.
type event struct {
	draft   *chatlog.Draft
	seq     int64
	users   []int64
	payload Payload
}

// batch is a room's messages gathered during one window.
type batch struct {
	room  int64
	due   time.Time
	count int
	last  event
	// senders wrote in the window: they are at the room, not away.
	senders map[int64]bool
	// named are the members some message of the window named, with the
	// newest such message.
	named map[int64]event
}

// delivery is one post to one subscription.
type delivery struct {
	sub     Subscription
	payload []byte
	topic   string
	urgency webpush.Urgency
}

// New builds a notifier on db (which holds members, rooms and the
// subscriptions); Start runs it.
func New(cfg Config, db *gorm.DB, reg prometheus.Registerer, log *slog.Logger) (*Notifier, error) {
	cfg.defaults()
	if err := cfg.Keys.Check(); err != nil {
		return nil, err
	}
	n := &Notifier{
		cfg: cfg, db: db, log: log,
		client:     newClient(cfg.Timeout, cfg.AllowLoopback),
		metrics:    newMetrics(reg),
		in:         make(chan event, cfg.Queue),
		resolve:    make(chan *batch, 256),
		deliveries: make(chan delivery, cfg.Queue),
	}
	n.rooms.Store(&map[int64]bool{})
	return n, nil
}

// Migrate creates the subscriptions table.
func (n *Notifier) Migrate() error { return n.db.AutoMigrate(&Subscription{}) }

// PublicKey is the VAPID public key browsers subscribe with.
func (n *Notifier) PublicKey() string { return n.cfg.Keys.Public }

// Start loads the rooms to watch and runs their reloader, the gatherer,
// two resolvers and the delivery workers until Close; presence tells who
// is away. Start fails only when the rooms to watch cannot be loaded.
func (n *Notifier) Start(presence Presence) error {
	n.presence = presence
	ctx, stop := context.WithCancel(context.Background())
	lctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	err := n.refresh(lctx)
	cancel()
	if err != nil {
		stop()
		return err
	}
	n.stop = stop
	n.wg.Go(func() { n.watch(ctx) })
	n.wg.Go(func() { n.gather(ctx) })
	for range 2 {
		n.wg.Go(func() { n.resolver(ctx) })
	}
	for range n.cfg.Workers {
		n.wg.Go(func() { n.worker(ctx) })
	}
	return nil
}

// Close stops the notifier; what was still queued is dropped.
func (n *Notifier) Close() {
	if n.stop != nil {
		n.stop()
		n.wg.Wait()
	}
}

// Accepted hears of a message the log accepted. A room where nobody has
// a subscription costs a map lookup; otherwise the message goes to the
// gatherer, never blocking: with the queue full the push is dropped and
// counted.
func (n *Notifier) Accepted(d *chatlog.Draft, seq int64) {
	if n.interested(d.Room) {
		n.enqueue(event{draft: d, seq: seq})
	}
}

// Notify hears of a live event for users; invitations are pushed to the
// invitees who are away, other events are not pushed.
func (n *Notifier) Notify(users []int64, ev []byte) {
	if p, ok := invitationPayload(ev); ok {
		n.enqueue(event{users: users, payload: p})
	}
}

func (n *Notifier) enqueue(ev event) {
	select {
	case n.in <- ev:
	default:
		n.metrics.dropped.Inc()
	}
}

var (
	kindSystem  = []byte(`"kind":"system"`)
	mentionsKey = []byte(`"mentions":`)
	feeKey      = []byte(`"fee":`)
)

// gather folds accepted messages into per-room batches and hands each
// on when its window ends; user events go on at once.
func (n *Notifier) gather(ctx context.Context) {
	pending := map[int64]*batch{}
	tick := time.NewTicker(max(n.cfg.Window/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-n.in:
			if ev.draft == nil {
				n.toResolver(&batch{last: ev})
				continue
			}
			// System lines (joins, renames) are not worth a buzz.
			if bytes.Contains(ev.draft.Tail, kindSystem) {
				continue
			}
			b := pending[ev.draft.Room]
			if b == nil {
				b = &batch{room: ev.draft.Room, due: time.Now().Add(n.cfg.Window), senders: map[int64]bool{}, named: map[int64]event{}}
				pending[ev.draft.Room] = b
			}
			b.count++
			b.last = ev
			if ev.draft.From > 0 {
				b.senders[ev.draft.From] = true
			}
			if bytes.Contains(ev.draft.Tail, mentionsKey) || bytes.Contains(ev.draft.Tail, feeKey) {
				if m, err := decode(ev); err == nil {
					for _, u := range targets(m) {
						b.named[u] = ev
					}
				}
			}
		case now := <-tick.C:
			for room, b := range pending {
				if !now.Before(b.due) {
					delete(pending, room)
					n.toResolver(b)
				}
			}
		}
	}
}

func (n *Notifier) toResolver(b *batch) {
	select {
	case n.resolve <- b:
	default:
		n.metrics.dropped.Inc()
	}
}

func decode(ev event) (*chatlog.Message, error) {
	var m chatlog.Message
	if err := json.Unmarshal(ev.draft.Encode(ev.seq), &m); err != nil {
		return nil, fmt.Errorf("push: decode message %d/%d: %w", ev.draft.Room, ev.seq, err)
	}
	return &m, nil
}

func (n *Notifier) resolver(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-n.resolve:
			rctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
			var err error
			if b.last.draft == nil {
				err = n.pushUsers(rctx, b.last.users, b.last.payload)
			} else {
				err = n.pushRoom(rctx, b)
			}
			cancel()
			if err != nil && ctx.Err() == nil {
				n.log.Warn("push: resolve recipients", "room", b.room, "err", err)
			}
		}
	}
}

// recipient is a member of a room with at least one subscription.
type recipient struct {
	UserID   int64
	Muted    bool
	RoomName string
}

// pushRoom sends a room's batch to its members who are away: one push
// each, unless they muted the room and no message named them.
func (n *Notifier) pushRoom(ctx context.Context, b *batch) error {
	var rows []recipient
	err := n.db.WithContext(ctx).Table("members").
		Select("members.user_id, members.muted, rooms.name AS room_name").
		Joins("JOIN rooms ON rooms.id = members.room_id").
		Where("members.room_id = ? AND EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = members.user_id)", b.room).
		Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("push: members of room %d with subscriptions: %w", b.room, err)
	}
	want := map[int64]event{}
	var ids []int64
	roomName := ""
	for _, r := range rows {
		roomName = r.RoomName
		ev, named := b.named[r.UserID]
		if b.senders[r.UserID] || r.Muted && !named {
			continue
		}
		if !named {
			ev = b.last
		}
		want[r.UserID] = ev
		ids = append(ids, r.UserID)
	}
	subs, err := n.awaySubscriptions(ctx, ids)
	if err != nil {
		return err
	}
	// Each message is decoded once, however many it is pushed to.
	decoded := map[*chatlog.Draft]*chatlog.Message{}
	for _, s := range subs {
		ev := want[s.UserID]
		m := decoded[ev.draft]
		if m == nil {
			if m, err = decode(ev); err != nil {
				return err
			}
			decoded[ev.draft] = m
		}
		_, named := b.named[s.UserID]
		urgency := webpush.UrgencyNormal
		if named {
			urgency = webpush.UrgencyHigh
		}
		n.deliver(s, messagePayload(m, roomName, b.count, named), "room"+strconv.FormatInt(b.room, 10), urgency)
	}
	return nil
}

// pushUsers sends one payload to those of users who are away.
func (n *Notifier) pushUsers(ctx context.Context, users []int64, p Payload) error {
	subs, err := n.awaySubscriptions(ctx, users)
	if err != nil {
		return err
	}
	for _, s := range subs {
		n.deliver(s, p, "", webpush.UrgencyHigh)
	}
	return nil
}

// awaySubscriptions lists the subscriptions of those of users who have
// no live connection on any node.
func (n *Notifier) awaySubscriptions(ctx context.Context, users []int64) ([]Subscription, error) {
	if len(users) == 0 {
		return nil, nil
	}
	online, err := n.presence.Online(ctx, users)
	if err != nil {
		return nil, fmt.Errorf("push: presence of %d users: %w", len(users), err)
	}
	var away []int64
	for _, u := range users {
		if !online[u] {
			away = append(away, u)
		}
	}
	if len(away) == 0 {
		return nil, nil
	}
	var subs []Subscription
	if err := n.db.WithContext(ctx).Where("user_id IN ?", away).Find(&subs).Error; err != nil {
		return nil, fmt.Errorf("push: subscriptions of %d users: %w", len(away), err)
	}
	return subs, nil
}

func (n *Notifier) deliver(s Subscription, p Payload, topic string, urgency webpush.Urgency) {
	raw, _ := json.Marshal(p) // strings and numbers always marshal
	select {
	case n.deliveries <- delivery{sub: s, payload: raw, topic: topic, urgency: urgency}:
	default:
		n.metrics.dropped.Inc()
	}
}

func (n *Notifier) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-n.deliveries:
			n.post(ctx, d)
		}
	}
}

// post encrypts a payload for one subscription (RFC 8291) and posts it
// with a VAPID token (RFC 8292). A subscription the service no longer
// knows (404, 410) is dropped.
func (n *Notifier) post(ctx context.Context, d delivery) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	resp, err := webpush.SendNotificationWithContext(ctx, d.payload, &webpush.Subscription{
		Endpoint: d.sub.Endpoint, Keys: webpush.Keys{P256dh: d.sub.P256dh, Auth: d.sub.Auth},
	}, &webpush.Options{
		HTTPClient: n.client, Subscriber: n.cfg.Subject, Topic: d.topic, Urgency: d.urgency,
		TTL: int(n.cfg.TTL.Seconds()), VAPIDPublicKey: n.cfg.Keys.Public, VAPIDPrivateKey: n.cfg.Keys.Private,
	})
	if err != nil {
		n.metrics.sent.WithLabelValues("error").Inc()
		n.log.Debug("push: post failed", "subscription", d.sub.ID, "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		n.metrics.sent.WithLabelValues("gone").Inc()
		n.forget(ctx, d.sub.ID)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		n.metrics.sent.WithLabelValues("ok").Inc()
	default:
		n.metrics.sent.WithLabelValues("refused").Inc()
		n.log.Debug("push: service refused", "subscription", d.sub.ID, "status", resp.StatusCode)
	}
}
