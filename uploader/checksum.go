package uploader

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
)

// Castagnoli is the CRC32C table; CRC32C is the per-part checksum S3 and
// MinIO verify on upload, hardware accelerated on amd64 and arm64.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FormatCRC32C renders a CRC32C the way S3 headers carry it: the big-endian
// bytes in standard base64.
func FormatCRC32C(c uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c)
	return base64.StdEncoding.EncodeToString(b[:])
}
