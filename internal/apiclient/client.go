// Package apiclient is a real client of a Moim node: the REST API with its
// one JSON error shape, sign-up and login, WebSocket dialing and frames,
// and the node's Prometheus metrics. Tests (through internal/testkit) and
// the scripts (loadgen, chaos, idleconns) share it, so they speak the
// protocol the same way.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAnswer bounds a REST answer the client reads (a history page or a
// ledger export stays far below it).
const maxAnswer = 16 << 20

// Client calls one node's REST API as one user (or anonymously while
// Token is empty). Its zero value, but for Base, is ready to use.
type Client struct {
	// Base is the node's URL: http://host:port.
	Base string
	// Token is the bearer token Login set.
	Token string
	// ID and Username are the logged-in user's.
	ID       int64
	Username string
	// HTTP, when set, replaces http.DefaultClient (e.g. to send from
	// another loopback address, or with a timeout).
	HTTP *http.Client
	// Header is added to every request.
	Header http.Header
}

// Error is a non-2xx answer in the API's one error shape,
// {"error":{"code","message"}}; Body is the answer as it came.
type Error struct {
	Status  int
	Code    string
	Message string
	Body    []byte
}

func (e *Error) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, bytes.TrimSpace(e.Body))
}

// ErrorBody is the one error shape as JSON.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Answer is one HTTP answer, whatever its status.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Raw sends body (JSON-encoded unless it is a string or []byte) and
// returns the status and the answer whatever the status.
func (c *Client) Raw(ctx context.Context, method, path string, body any) (int, []byte, error) {
	a, err := c.Exchange(ctx, method, path, body)
	if a == nil {
		return 0, nil, err
	}
	return a.Status, a.Body, err
}

// Exchange is Raw with the answer's headers.
func (c *Client) Exchange(ctx context.Context, method, path string, body any) (*Answer, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Send(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	a := &Answer{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	if err != nil {
		return a, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return a, nil
}

// Send sends req as c: its token, its headers, through its HTTP client.
// The caller closes the answer's body.
func (c *Client) Send(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	hc := http.DefaultClient
	if c.HTTP != nil {
		hc = c.HTTP
	}
	return hc.Do(req)
}

// Do sends a request and decodes a 2xx JSON answer into out (when not
// nil); any other status is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	status, raw, err := c.Raw(ctx, method, path, body)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return ParseError(status, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode %.200q: %w", method, path, raw, err)
		}
	}
	return nil
}

// ParseError reads a failed answer as the one error shape (Code and
// Message stay empty when it is not that shape).
func ParseError(status int, raw []byte) *Error {
	var e ErrorBody
	_ = json.Unmarshal(raw, &e)
	return &Error{Status: status, Code: e.Error.Code, Message: e.Error.Message, Body: raw}
}

// StatusOf is err's HTTP status when it is an *Error, else 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Signup creates the account and returns its id.
func (c *Client) Signup(ctx context.Context, username, password, displayName string) (int64, error) {
	var u struct {
		ID int64 `json:"id"`
	}
	err := c.Do(ctx, http.MethodPost, "/api/auth/signup", map[string]string{
		"username": username, "password": password, "display_name": displayName,
	}, &u)
	if err != nil {
		return 0, fmt.Errorf("sign up %s: %w", username, err)
	}
	return u.ID, nil
}

// Login logs username in and keeps its token, id and name in c.
func (c *Client) Login(ctx context.Context, username, password string) error {
	var login struct {
		Token string `json:"token"`
		User  struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	if err := c.Do(ctx, http.MethodPost, "/api/auth/login", map[string]string{"username": username, "password": password}, &login); err != nil {
		return fmt.Errorf("log in %s: %w", username, err)
	}
	if login.Token == "" || login.User.ID <= 0 {
		return fmt.Errorf("log in %s: the answer has no token or user id", username)
	}
	c.Token, c.ID, c.Username = login.Token, login.User.ID, username
	return nil
}

// SignupOrLogin signs username up, or finds it taken (a previous run's
// user), and logs it in.
func (c *Client) SignupOrLogin(ctx context.Context, username, password, displayName string) (created bool, err error) {
	_, err = c.Signup(ctx, username, password, displayName)
	if err != nil && StatusOf(err) != http.StatusConflict {
		return false, err
	}
	return err == nil, c.Login(ctx, username, password)
}
