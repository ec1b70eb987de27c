package wsproto

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692) without context takeover in either
// direction: every message is a fresh deflate stream, so no connection
// keeps a compressor or a 32 KiB window between messages, and the
// compressors and decompressors are pooled.

// deflateTail is the empty stored block that a sync flush ends with; the
// sender strips it and the receiver puts it back (RFC 7692 section 7.2).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflateFinal is an empty final stored block, appended after the tail so
// the decompressor sees the end of the stream.
var deflateFinal = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// Deflate appends the compressed form of p to dst.
func Deflate(dst, p []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	w := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(w)
	w.Reset(buf)
	if _, err := w.Write(p); err != nil {
		return dst, err
	}
	if err := w.Flush(); err != nil {
		return dst, err
	}
	out := buf.Bytes()
	if !bytes.HasSuffix(out, deflateTail) {
		return dst, errors.New("wsproto: deflate flush did not end with an empty stored block")
	}
	return out[:len(out)-len(deflateTail)], nil
}

type inflater struct {
	r   io.ReadCloser
	src bytes.Reader
	mr  multiReader
}

// multiReader reads the compressed payload, then the two closing blocks,
// without allocating per message as io.MultiReader would.
type multiReader struct {
	parts [3][]byte
	i     int
}

func (m *multiReader) Read(p []byte) (int, error) {
	for m.i < len(m.parts) {
		if len(m.parts[m.i]) == 0 {
			m.i++
			continue
		}
		n := copy(p, m.parts[m.i])
		m.parts[m.i] = m.parts[m.i][n:]
		return n, nil
	}
	return 0, io.EOF
}

func (m *multiReader) ReadByte() (byte, error) {
	for m.i < len(m.parts) {
		if len(m.parts[m.i]) == 0 {
			m.i++
			continue
		}
		b := m.parts[m.i][0]
		m.parts[m.i] = m.parts[m.i][1:]
		return b, nil
	}
	return 0, io.EOF
}

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// ErrInflatedTooLarge reports a message that inflates past the limit (a zip
// bomb, or just a large message): the engine closes with 1009.
var ErrInflatedTooLarge = errors.New("wsproto: inflated message over the size limit")

// Inflate appends the decompressed form of p (one message's payload, the
// sync-flush tail stripped as RFC 7692 section 7.2.2 sends it) to dst,
// producing at most limit bytes of output: past that it stops with
// ErrInflatedTooLarge, so a deflate bomb costs no more than limit.
func Inflate(dst, p []byte, limit int) ([]byte, error) {
	f := inflaters.Get().(*inflater)
	defer inflaters.Put(f)
	f.mr = multiReader{parts: [3][]byte{p, deflateTail, deflateFinal}}
	if f.r == nil {
		f.r = flate.NewReader(&f.mr)
	} else if err := f.r.(flate.Resetter).Reset(&f.mr, nil); err != nil {
		return dst, err
	}
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		room := dst[len(dst):cap(dst)]
		if over := start + limit + 1 - len(dst); len(room) > over {
			room = room[:over]
		}
		n, err := f.r.Read(room)
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst, ErrInflatedTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
