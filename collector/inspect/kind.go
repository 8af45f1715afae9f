package inspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// HeaderSize is how many leading bytes of a file Kind needs to recognise
// every kind it knows. Callers read this much (or less, for shorter files).
const HeaderSize = 64

// Dump kinds returned by Kind. They are stable strings because they end up in
// manifests and in tools that filter on them.
const (
	KindELFCore      = "elf-core"
	KindELF          = "elf"
	KindMinidump     = "minidump"
	KindHprof        = "hprof"
	KindHeapSnapshot = "heapsnapshot"
	KindUnknown      = "unknown"
)

// Kind classifies a dump by its first bytes (at most HeaderSize are looked
// at). File names are not trusted for this: a pod picks its own file names,
// but the content is what tools will have to open.
func Kind(header []byte) string {
	if len(header) > HeaderSize {
		header = header[:HeaderSize]
	}
	switch {
	case bytes.HasPrefix(header, []byte(elf.ELFMAG)):
		// e_type is the 16-bit field right after the 16-byte e_ident, in the
		// byte order e_ident announces.
		// An unknown byte order makes it an ELF file that ReadCore will not
		// read either.
		if len(header) < 18 {
			return KindELF
		}
		var order binary.ByteOrder
		switch elf.Data(header[elf.EI_DATA]) {
		case elf.ELFDATA2LSB:
			order = binary.LittleEndian
		case elf.ELFDATA2MSB:
			order = binary.BigEndian
		default:
			return KindELF
		}
		if elf.Type(order.Uint16(header[16:18])) == elf.ET_CORE {
			return KindELFCore
		}
		return KindELF
	case bytes.HasPrefix(header, []byte("MDMP")):
		return KindMinidump
	case bytes.HasPrefix(header, []byte("JAVA PROFILE 1.0.")):
		// "JAVA PROFILE 1.0.1" and "1.0.2" are both in use.
		return KindHprof
	case isHeapSnapshot(header):
		return KindHeapSnapshot
	}
	return KindUnknown
}

// isHeapSnapshot recognises V8's heap snapshot JSON, which always starts with
// the "snapshot" member. Whitespace is allowed where JSON allows it, because
// tools that re-save snapshots pretty-print them.
func isHeapSnapshot(b []byte) bool {
	b = bytes.TrimPrefix(skipSpace(b), []byte("\xef\xbb\xbf"))
	b = skipSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	b = skipSpace(b[1:])
	if !bytes.HasPrefix(b, []byte(`"snapshot"`)) {
		return false
	}
	b = skipSpace(b[len(`"snapshot"`):])
	return len(b) > 0 && b[0] == ':'
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}
