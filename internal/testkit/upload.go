package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"moim/internal/apiclient"
)

// Upload posts data to room's attachments as the multipart field "file",
// claiming clientType for it, and returns the status and the answer.
func (c *Client) Upload(room int64, name, clientType string, data []byte) (int, []byte) {
	c.T.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	h.Set("Content-Type", clientType)
	part, err := mw.CreatePart(h)
	if err != nil {
		c.T.Fatal(err)
	}
	_, _ = part.Write(data)
	_ = mw.Close()
	req, err := http.NewRequest("POST", c.Base+fmt.Sprintf("/api/rooms/%d/attachments", room), &body)
	if err != nil {
		c.T.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, raw := c.send(req)
	return resp.StatusCode, raw
}

// MustUpload uploads and decodes a 201.
func (c *Client) MustUpload(room int64, name, clientType string, data []byte) apiclient.Attachment {
	c.T.Helper()
	status, raw := c.Upload(room, name, clientType, data)
	if status != 201 {
		c.T.Fatalf("upload %s: %d %s", name, status, raw)
	}
	var m apiclient.Attachment
	if err := json.Unmarshal(raw, &m); err != nil {
		c.T.Fatal(err)
	}
	return m
}

// UploadFails asserts an upload is refused with status and code in the
// one error shape.
func (c *Client) UploadFails(status int, code string, room int64, name string, data []byte) {
	c.T.Helper()
	got, raw := c.Upload(room, name, "application/octet-stream", data)
	var e apiclient.ErrorBody
	if json.Unmarshal(raw, &e) != nil || got != status || e.Error.Code != code || e.Error.Message == "" {
		c.T.Fatalf("upload %s (%d bytes): %d %.200s, want %d %q in the error shape", name, len(data), got, raw, status, code)
	}
}

// Fetch GETs path and returns the response (its headers: a download's
// type, disposition, caching) with its body read.
func (c *Client) Fetch(path string) (*http.Response, []byte) {
	c.T.Helper()
	req, err := http.NewRequest("GET", c.Base+path, nil)
	if err != nil {
		c.T.Fatal(err)
	}
	return c.send(req)
}

// send sends req as c and reads the answer.
func (c *Client) send(req *http.Request) (*http.Response, []byte) {
	c.T.Helper()
	resp, err := c.Client.Send(req)
	if err != nil {
		c.T.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.T.Fatalf("%s %s: read the answer: %v", req.Method, req.URL.Path, err)
	}
	return resp, raw
}
