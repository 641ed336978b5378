package attachments

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"

	"github.com/gofiber/fiber/v2"

	"moim/api"
)

// Routes registers the upload and download routes under r (mounted at
// /api); userID reads the authenticated caller.
func (a *Attachments) Routes(r fiber.Router, auth fiber.Handler, userID func(*fiber.Ctx) int64) {
	r.Post("/rooms/:id/attachments", auth, func(c *fiber.Ctx) error { return a.handleUpload(c, userID(c)) })
	r.Get("/attachments/:aid", auth, func(c *fiber.Ctx) error { return a.handleGet(c, userID(c), false) })
	r.Get("/attachments/:aid/thumbnail", auth, func(c *fiber.Ctx) error { return a.handleGet(c, userID(c), true) })
	r.Delete("/attachments/:aid", auth, func(c *fiber.Ctx) error {
		if err := a.Delete(c.UserContext(), c.Params("aid"), userID(c)); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
}

func (a *Attachments) handleUpload(c *fiber.Ctx, user int64) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return api.BadRequest("send the file as multipart/form-data in the field \"file\"")
	}
	if fh.Size > MaxSize {
		return ErrTooLarge
	}
	raw, err := readPart(fh)
	if err != nil {
		return err
	}
	v, err := a.Upload(c.UserContext(), room, user, fh.Filename, raw)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(v)
}

// readPart reads an uploaded part, at most MaxSize bytes of it.
func readPart(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, api.BadRequest("the file part could not be read")
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, api.BadRequest("the file part could not be read")
	}
	if len(raw) > MaxSize {
		return nil, ErrTooLarge
	}
	return raw, nil
}

// handleGet serves an attachment or its thumbnail to members of its
// room. The bytes under an id never change, so clients may keep them for
// a year; private, since only members may have them. nosniff and, for
// anything but an image, a download disposition and a sandbox keep an
// upload from ever running as a page of this origin.
func (a *Attachments) handleGet(c *fiber.Ctx, user int64, thumb bool) error {
	r, _, err := a.find(c.UserContext(), c.Params("aid"), user)
	if err != nil {
		return err
	}
	if r.RemovedAt != nil {
		return ErrGone
	}
	key, typ, size := r.ID, r.Type, r.Size
	if thumb {
		if r.ThumbSize == 0 {
			return api.NotFound("thumbnail")
		}
		key, typ, size = thumbKey(r.ID), r.ThumbType, r.ThumbSize
	}
	etag := `"` + key + `"`
	c.Set(fiber.HeaderCacheControl, "private, max-age=31536000, immutable")
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	body, err := a.blobs.Open(c.UserContext(), key)
	if errors.Is(err, ErrNoBlob) {
		return api.NotFound("attachment")
	}
	if err != nil {
		return err
	}
	disposition := "inline"
	if r.Kind != "image" {
		disposition = "attachment"
		c.Set(fiber.HeaderContentSecurityPolicy, "sandbox; default-src 'none'")
	}
	if d := mime.FormatMediaType(disposition, map[string]string{"filename": r.Name}); d != "" {
		disposition = d
	}
	c.Set(fiber.HeaderContentDisposition, disposition)
	c.Set(fiber.HeaderContentType, typ)
	return c.SendStream(body, int(size))
}
