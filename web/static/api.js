// REST calls to the node (server/openapi.json). Every error comes back as
// an ApiError with the server's code; a failed connection is code
// "network".

const TOKEN = "moim.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() {
    return localStorage.getItem(TOKEN) || "";
  },
  set token(v) {
    if (v) localStorage.setItem(TOKEN, v);
    else localStorage.removeItem(TOKEN);
  },
};

// unauthorized is fired on window when a request's token is refused, so
// the app can send the user back to the login screen.
export const UNAUTHORIZED = "moim:unauthorized";

// pin, when set, is the wallet PIN sent with requests that move money.
async function request(method, path, body, { raw = false, pin = "" } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = "Bearer " + session.token;
  if (pin) headers["X-Wallet-PIN"] = pin;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "network error");
  }
  if (res.ok && raw) return res;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    // A 401 for a missing wallet PIN is not a lost login.
    if (res.status === 401 && e.code !== "pin_required" && session.token && !path.startsWith("/api/auth/")) {
      window.dispatchEvent(new Event(UNAUTHORIZED));
    }
    throw new ApiError(res.status, e.code || "http_" + res.status, e.message || res.statusText);
  }
  return data;
}

const q = (params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const str = s.toString();
  return str ? "?" + str : "";
};

export const api = {
  signup: (username, password, display_name) => request("POST", "/api/auth/signup", { username, password, display_name }),
  login: (username, password) => request("POST", "/api/auth/login", { username, password }),
  me: () => request("GET", "/api/me"),

  contacts: () => request("GET", "/api/contacts").then((r) => r.contacts),
  addContact: (username) => request("POST", "/api/contacts", { username }),

  rooms: () => request("GET", "/api/rooms").then((r) => r.rooms),
  room: (id) => request("GET", `/api/rooms/${id}`),
  createRoom: (body) => request("POST", "/api/rooms", body),
  direct: (user_id) => request("POST", "/api/rooms/direct", { user_id }),
  search: (text, cursor) => request("GET", "/api/rooms/search" + q({ q: text, cursor, limit: 20 })),
  join: (id, password) => request("POST", `/api/rooms/${id}/join`, password ? { password } : undefined),
  leave: (id) => request("POST", `/api/rooms/${id}/leave`),
  deleteRoom: (id) => request("DELETE", `/api/rooms/${id}`),
  deleteAttachment: (id) => request("DELETE", `/api/attachments/${encodeURIComponent(id)}`),
  transferOwner: (id, user_id) => request("PUT", `/api/rooms/${id}/owner`, { user_id }),
  members: (id) => request("GET", `/api/rooms/${id}/members`).then((r) => r.members),
  presence: (id) => request("GET", `/api/rooms/${id}/presence`).then((r) => r.members),
  // before: newest first below that seq (0 = from the newest).
  history: (id, before, limit = 50) => request("GET", `/api/rooms/${id}/messages` + q({ before, limit })).then((r) => r.messages),

  wallet: () => request("GET", "/api/wallet"),
  topUp: (amount, idempotency_key) => request("POST", "/api/wallet/topups", { amount, idempotency_key }),
  confirmTopUp: (payment_key, order_id, amount) => request("POST", "/api/wallet/topups/confirm", { payment_key, order_id, amount }),
  cancelTopUp: (order_id, code, message) => request("POST", "/api/wallet/topups/cancel", { order_id, code: code || "", message: message || "" }),
  withdraw: (amount, idempotency_key, pin) => request("POST", "/api/wallet/withdrawals", { amount, idempotency_key }, { pin }),
  send: (to_user_id, amount, memo, idempotency_key, pin) =>
    request("POST", "/api/wallet/transfers", { to_user_id, amount, memo, idempotency_key }, { pin }),
  setPIN: (pin, current_pin) => request("PUT", "/api/wallet/pin", current_pin ? { pin, current_pin } : { pin }),
  fund: (id) => request("GET", `/api/rooms/${id}/fund`),
  openFund: (id) => request("POST", `/api/rooms/${id}/fund`, { currency: "KRW" }),
  pay: (id, amount, period, idempotency_key, pin) =>
    request("POST", `/api/rooms/${id}/fund/pay`, { amount, period, idempotency_key }, { pin }),
  spend: (id, amount, memo, idempotency_key, receipt_attachment_id) =>
    request("POST", `/api/rooms/${id}/fund/spend`, receipt_attachment_id ? { amount, memo, idempotency_key, receipt_attachment_id } : { amount, memo, idempotency_key }),
  refund: (id, user_id, amount, memo, idempotency_key) =>
    request("POST", `/api/rooms/${id}/fund/refund`, { user_id, amount, memo, idempotency_key }),
  // Off-wallet lines (cash, waivers) come with the first page only.
  ledgerPage: (id, cursor) => request("GET", `/api/rooms/${id}/fund/ledger` + q({ cursor, limit: 20 })),
  ledgerCSV: (id) => request("GET", `/api/rooms/${id}/fund/ledger?format=csv`, undefined, { raw: true }).then((r) => r.blob()),
  dues: (id) => request("GET", `/api/rooms/${id}/dues`),
  setDues: (id, amount, period, due_day) => request("PUT", `/api/rooms/${id}/dues`, { amount, period, due_day }),
  duesStatus: (id) => request("GET", `/api/rooms/${id}/dues/status`),
  remind: (id) => request("POST", `/api/rooms/${id}/dues/remind`),

  // Club features (issue 20).
  updateRoom: (id, patch) => request("PATCH", `/api/rooms/${id}`, patch),
  invite: (id, user_ids) => request("POST", `/api/rooms/${id}/members`, { user_ids }),
  invitations: () => request("GET", "/api/invitations").then((r) => r.invitations),
  accept: (id) => request("POST", `/api/invitations/${id}/accept`),
  decline: (id) => request("POST", `/api/invitations/${id}/decline`),
  createLink: (id, expires_in_s, max_uses) => request("POST", `/api/rooms/${id}/invite-links`, { expires_in_s, max_uses }),
  inviteLinks: (id) => request("GET", `/api/rooms/${id}/invite-links`).then((r) => r.links),
  revokeLink: (id, code) => request("DELETE", `/api/rooms/${id}/invite-links/${encodeURIComponent(code)}`),
  joinByLink: (code) => request("POST", `/api/invite-links/${encodeURIComponent(code)}/join`),
  edit: (id, seq, body) => request("PATCH", `/api/rooms/${id}/messages/${seq}`, { body }),
  setNotice: (id, seq) => request("PUT", `/api/rooms/${id}/notice`, { seq }),
  clearNotice: (id) => request("DELETE", `/api/rooms/${id}/notice`),
  findUsers: (text) => request("GET", "/api/users/search" + q({ q: text })).then((r) => r.users),
  // Push notifications and per-room mute.
  vapidKey: () => request("GET", "/api/push/vapid-key"),
  subscribePush: (sub) => request("POST", "/api/push/subscriptions", sub),
  unsubscribePush: (endpoint) => request("DELETE", "/api/push/subscriptions", { endpoint }),
  mute: (id) => request("PUT", `/api/rooms/${id}/mute`),
  unmute: (id) => request("DELETE", `/api/rooms/${id}/mute`),
  // --- the treasurer's desk, auto-pay, room administration, search ---
  record: (id, user_id, period, amount, memo) => request("POST", `/api/rooms/${id}/dues/records`, { user_id, period, amount, memo }),
  waive: (id, user_id, period, memo) => request("POST", `/api/rooms/${id}/dues/waivers`, { user_id, period, memo }),
  audit: (id) => request("GET", `/api/rooms/${id}/dues/audit`).then((r) => r.audit),
  roomSchedules: (id) => request("GET", `/api/rooms/${id}/schedules` + q({ limit: 100 })).then((r) => r.schedules),
  createSchedule: (body, pin) => request("POST", "/api/schedules", body, { pin }),
  cancelSchedule: (id) => request("DELETE", `/api/schedules/${id}`),
  removeMember: (id, user_id) => request("DELETE", `/api/rooms/${id}/members/${user_id}`),
  setRole: (id, user_id, role) => request("PUT", `/api/rooms/${id}/members/${user_id}/role`, { role }),
  bans: (id) => request("GET", `/api/rooms/${id}/bans`).then((r) => r.bans),
  liftBan: (id, user_id) => request("DELETE", `/api/rooms/${id}/bans/${user_id}`),
  searchMessages: (id, text) => request("GET", `/api/rooms/${id}/messages/search` + q({ q: text, limit: 30 })).then((r) => r.messages),
  // after: oldest first above that seq.
  historyAfter: (id, after, limit = 100) => request("GET", `/api/rooms/${id}/messages` + q({ after, limit })).then((r) => r.messages),
};
