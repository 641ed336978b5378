// k6/http: blocking requests, made by the runner's fetch (see call in
// context.mjs), with k6's response shape and its http_req_* metrics.
import { call, ctx, notInit, record, sample } from './context.mjs';

/** expectedStatuses marks which statuses count as success in http_req_failed. */
export function expectedStatuses(...statuses) {
  return { expectedStatuses: statuses };
}

function expected(status, params) {
  const cb = params.responseCallback;
  if (!cb) return status >= 200 && status < 400;
  return cb.expectedStatuses.some((s) => (typeof s === 'number' ? s === status : status >= s.min && status <= s.max));
}

function canonical(name) {
  return name.split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('-');
}

function normalize(method, url, body, params) {
  if (body !== null && body !== undefined && typeof body !== 'string') {
    throw new Error('k6 shim: only string bodies are supported (JSON.stringify the body)');
  }
  return { method: method.toUpperCase(), url: String(url), body: body ?? undefined, headers: params.headers || {},
    timeout: params.timeout ? parseInt(params.timeout, 10) * 1000 : 60000 };
}

function response(req, res, params) {
  const ok = expected(res.status, params);
  const tags = { method: req.method, status: String(res.status), name: req.url, expected_response: String(ok),
    ...(params.tags || {}) };
  sample('http_reqs', 'counter', 1, tags);
  sample('http_req_duration', 'trend', res.duration, tags);
  sample('http_req_failed', 'rate', ok ? 0 : 1, tags);
  record({ k: 'http', method: req.method, url: req.url, status: res.status, scenario: ctx.scenario && ctx.scenario.name });
  const headers = {};
  for (const [k, v] of Object.entries(res.headers)) headers[canonical(k)] = v;
  return {
    status: res.status,
    body: res.body,
    headers,
    url: req.url,
    error: res.error || '',
    error_code: res.error ? 1000 : 0,
    timings: { duration: res.duration },
    request: { method: req.method, url: req.url, body: req.body || '' },
    json(selector) {
      if (selector !== undefined) throw new Error('k6 shim: json(selector) is not supported');
      return JSON.parse(this.body);
    },
  };
}

function send(list) {
  notInit('making HTTP requests');
  const reqs = list.map(([method, url, body, params]) => normalize(method, url, body, params || {}));
  const replies = call({ kind: 'http', reqs });
  return replies.map((res, i) => response(reqs[i], res, list[i][3] || {}));
}

export function request(method, url, body, params) {
  return send([[method, url, body, params]])[0];
}

export function get(url, params) {
  return request('GET', url, null, params);
}

export function post(url, body, params) {
  return request('POST', url, body, params);
}

export function put(url, body, params) {
  return request('PUT', url, body, params);
}

export function patch(url, body, params) {
  return request('PATCH', url, body, params);
}

export function del(url, body, params) {
  return request('DELETE', url, body, params);
}

/** batch sends its requests in parallel and returns the responses in order. */
export function batch(requests) {
  if (!Array.isArray(requests)) throw new Error('k6 shim: batch takes an array');
  return send(requests.map((r) => {
    if (typeof r === 'string') return ['GET', r, null, {}];
    if (Array.isArray(r)) return r;
    return [r.method || 'GET', r.url, r.body, r.params];
  }));
}

export default { request, get, post, put, patch, del, batch, expectedStatuses };
