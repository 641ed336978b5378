// The client's shared state and the event bus the views listen on. Views
// never talk to each other: they read state and react to bus events.

export const state = {
  me: null, // the logged-in user
  socket: null,
  online: false,
  rooms: new Map(), // id -> room as GET /api/rooms lists it, plus latest and myRead
  msgs: new Map(), // room -> Map(seq -> msg) loaded so far
  members: new Map(), // room -> [member]
  reads: new Map(), // room -> Map(user -> read seq)
  presence: new Map(), // user -> online
  typing: new Map(), // room -> Map(user -> expiry ms)
  current: 0, // the open room
  dues: false, // the dues panel is open
};

export const bus = new EventTarget();

export function emit(type, detail) {
  bus.dispatchEvent(new CustomEvent(type, { detail }));
}

// listen subscribes to bus events and returns the unsubscribe function.
export function listen(handlers) {
  const fns = Object.entries(handlers).map(([type, fn]) => {
    const l = (e) => fn(e.detail);
    bus.addEventListener(type, l);
    return [type, l];
  });
  return () => fns.forEach(([type, l]) => bus.removeEventListener(type, l));
}

export function roomMsgs(room) {
  if (!state.msgs.has(room)) state.msgs.set(room, new Map());
  return state.msgs.get(room);
}

export function unread(room) {
  const r = state.rooms.get(room);
  return r ? Math.max(0, r.latest - r.myRead) : 0;
}

// readBy counts the other members who have read up to seq.
export function readBy(room, seq) {
  let n = 0;
  for (const [user, s] of state.reads.get(room) || []) if (user !== state.me.id && s >= seq) n++;
  return n;
}

export function memberName(room, user) {
  const m = (state.members.get(room) || []).find((x) => x.user_id === user);
  return m ? m.display_name : "#" + user;
}

export function isAdmin(room) {
  const r = state.rooms.get(room);
  return !!r && (r.role === "owner" || r.role === "admin");
}
