package attachments

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	xdraw "golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers WebP decoding with image.Decode
)

// Limits of image handling.
const (
	// maxPixels refuses decompression bombs: a small file that decodes
	// to a huge canvas. 50 megapixels is above any phone camera's photo.
	maxPixels = 50_000_000
	// thumbEdge is the longest side of a thumbnail, in pixels: enough for
	// a chat bubble on a high-density phone screen.
	thumbEdge = 480
	// jpegQuality for re-encoded photos and thumbnails: visually the
	// same as a camera's, a fraction of the size.
	jpegQuality = 85
)

// processed is an image re-encoded without its metadata, with a
// thumbnail.
type processed struct {
	data, thumb   []byte
	thumbType     string
	typ, ext      string // media type and file extension of data
	width, height int
}

// processImage decodes an image of a sniffed type and encodes it again,
// so EXIF (GPS position, camera serial), XMP and comments are gone: the
// standard encoders write pixels only. A JPEG's EXIF orientation is
// applied first, so a phone photo still stands the right way up. GIF
// keeps its frames; WebP (no encoder in Go) becomes PNG when it has
// transparency, JPEG otherwise. ok is false when the bytes do not decode
// within the limits: the upload is then kept as a plain file.
func processImage(raw []byte, typ string) (p processed, ok bool) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPixels {
		return p, false
	}
	var out bytes.Buffer
	var img image.Image
	switch typ {
	case "image/gif":
		g, err := gif.DecodeAll(bytes.NewReader(raw))
		if err != nil || len(g.Image) == 0 || len(g.Image)*cfg.Width*cfg.Height > maxPixels*4 {
			return p, false
		}
		// EncodeAll writes frames, delays, disposal and loop count: no
		// comment or application extension (XMP) survives.
		if gif.EncodeAll(&out, &gif.GIF{Image: g.Image, Delay: g.Delay, Disposal: g.Disposal, LoopCount: g.LoopCount, Config: g.Config, BackgroundIndex: g.BackgroundIndex}) != nil {
			return p, false
		}
		img, p.typ, p.ext = g.Image[0], "image/gif", ".gif"
	default:
		if img, _, err = image.Decode(bytes.NewReader(raw)); err != nil {
			return p, false
		}
		if typ == "image/jpeg" {
			img = orient(img, jpegOrientation(raw))
		}
		if typ == "image/png" || (typ == "image/webp" && !opaque(img)) {
			err, p.typ, p.ext = png.Encode(&out, img), "image/png", ".png"
		} else {
			err, p.typ, p.ext = jpeg.Encode(&out, img, &jpeg.Options{Quality: jpegQuality}), "image/jpeg", ".jpg"
		}
		if err != nil {
			return p, false
		}
	}
	b := img.Bounds()
	p.data, p.width, p.height = out.Bytes(), b.Dx(), b.Dy()
	p.thumb, p.thumbType = thumbnail(img)
	return p, p.thumb != nil
}

// thumbnail scales img to fit thumbEdge (never up) as a JPEG, or a PNG
// when it has transparency, which JPEG would turn black.
func thumbnail(img image.Image) ([]byte, string) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > thumbEdge || h > thumbEdge {
		if w >= h {
			w, h = thumbEdge, max(1, h*thumbEdge/w)
		} else {
			w, h = max(1, w*thumbEdge/h), thumbEdge
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	var out bytes.Buffer
	if opaque(dst) {
		if jpeg.Encode(&out, dst, &jpeg.Options{Quality: jpegQuality}) != nil {
			return nil, ""
		}
		return out.Bytes(), "image/jpeg"
	}
	if png.Encode(&out, dst) != nil {
		return nil, ""
	}
	return out.Bytes(), "image/png"
}

// opaque reports whether every pixel of img is fully opaque.
func opaque(img image.Image) bool {
	if o, ok := img.(interface{ Opaque() bool }); ok {
		return o.Opaque()
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if _, _, _, a := img.At(x, y).RGBA(); a != 0xffff {
				return false
			}
		}
	}
	return true
}

// jpegOrientation reads the EXIF orientation tag (1 to 8) of a JPEG; 1
// (as stored) when there is none or it cannot be read.
func jpegOrientation(raw []byte) int {
	r := bytes.NewReader(raw)
	var marker [2]byte
	if _, err := io.ReadFull(r, marker[:]); err != nil || marker != [2]byte{0xFF, 0xD8} {
		return 1
	}
	for {
		var head [4]byte
		if _, err := io.ReadFull(r, head[:]); err != nil || head[0] != 0xFF {
			return 1
		}
		size := int(binary.BigEndian.Uint16(head[2:]))
		if head[1] == 0xDA || size < 2 { // start of scan: no EXIF before it
			return 1
		}
		seg := make([]byte, size-2)
		if _, err := io.ReadFull(r, seg); err != nil {
			return 1
		}
		if head[1] == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return tiffOrientation(seg[6:])
		}
	}
}

// tiffOrientation finds tag 0x0112 in a TIFF header's first directory.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[off:]))
	for i := range n {
		e := off + 2 + i*12
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 {
			if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// orient turns img as EXIF orientation o says the camera held it.
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 { // 5 to 8 swap the axes
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			dst.Set(dx, dy, color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)))
		}
	}
	return dst
}
