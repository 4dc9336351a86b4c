package delta

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
)

func appendRec(b []byte, add, cp, seek int64) []byte {
	b = binary.AppendUvarint(b, uint64(add))
	b = binary.AppendUvarint(b, uint64(cp))
	return binary.AppendVarint(b, seek)
}

func deflated(b []byte) []byte {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestSpeed)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func header(baseSize, resultSize int64, ctrl, diff, extra []byte) []byte {
	h := make([]byte, HeaderSize)
	copy(h, Magic)
	binary.LittleEndian.PutUint64(h[8:], uint64(baseSize))
	binary.LittleEndian.PutUint64(h[16:], uint64(resultSize))
	binary.LittleEndian.PutUint64(h[24:], uint64(len(ctrl)))
	binary.LittleEndian.PutUint64(h[32:], uint64(len(diff)))
	binary.LittleEndian.PutUint64(h[40:], uint64(len(extra)))
	return append(append(append(h, ctrl...), diff...), extra...)
}
