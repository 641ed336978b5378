package testkit

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

// GPSMarker is a latitude of 37;33;59.77 (Seoul City Hall) as EXIF
// rationals: bytes no re-encoded image would hold by chance.
var GPSMarker = []byte{37, 0, 0, 0, 1, 0, 0, 0, 33, 0, 0, 0, 1, 0, 0, 0, 0x59, 0x17, 0, 0, 100, 0, 0, 0}

// PhoneJPEG is a w×h JPEG as a phone writes it: an APP1 EXIF block right
// after SOI with orientation 6 (turned 90° clockwise) and a GPS IFD
// holding the photo's latitude.
func PhoneJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 90, 255})
		}
	}
	var plain bytes.Buffer
	if err := jpeg.Encode(&plain, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	tiff := []byte("II*\x00")
	tiff = le.AppendUint32(tiff, 8)
	// IFD0 at 8: orientation, GPS IFD pointer; next IFD none.
	ifd0 := le.AppendUint16(nil, 2)
	ifd0 = append(le.AppendUint16(le.AppendUint16(ifd0, 0x0112), 3), 1, 0, 0, 0, 6, 0, 0, 0)
	gpsAt := uint32(8 + 2 + 2*12 + 4)
	ifd0 = le.AppendUint32(le.AppendUint32(le.AppendUint16(le.AppendUint16(ifd0, 0x8825), 4), 1), gpsAt)
	ifd0 = le.AppendUint32(ifd0, 0)
	tiff = append(tiff, ifd0...)
	// GPS IFD: latitude ref "N", latitude (3 rationals after the IFD).
	latAt := gpsAt + 2 + 2*12 + 4
	gps := le.AppendUint16(nil, 2)
	gps = append(le.AppendUint32(le.AppendUint16(le.AppendUint16(gps, 0x0001), 2), 2), 'N', 0, 0, 0)
	gps = le.AppendUint32(le.AppendUint32(le.AppendUint16(le.AppendUint16(gps, 0x0002), 5), 3), latAt)
	gps = le.AppendUint32(gps, 0)
	tiff = append(append(tiff, gps...), GPSMarker...)
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	seg := append([]byte{0xFF, 0xE1}, byte((len(app1)+2)>>8), byte(len(app1)+2))
	raw := plain.Bytes()
	out := append(append(append([]byte{}, raw[:2]...), seg...), append(app1, raw[2:]...)...)
	if !bytes.Contains(out, GPSMarker) {
		t.Fatal("test JPEG lacks its GPS block")
	}
	return out
}

// PNG is a blank w×h grey PNG.
func PNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
