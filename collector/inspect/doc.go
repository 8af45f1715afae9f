// Package inspect reads what a dump file says about itself, so that the
// agent, while it prepares a dump (docs/architecture.md, "Prepare"), can fill
// the manifest's "core" and "crashReport" sections (docs/manifest.md) and the
// Kubernetes Event can name the exception type.
//
// It answers three questions:
//
//   - Kind: what sort of dump is this (ELF core, ELF executable, Windows
//     minidump, JVM hprof, V8 heap snapshot), from its first HeaderSize bytes.
//   - ReadCore: for an ELF core, which signal killed which process, running
//     which executable with which arguments, with which threads.
//   - ParseCrashReport: for the .crashreport.json that the .NET runtime's
//     createdump writes next to a dump, the managed exception type, HRESULT
//     and the top frames of the crashed thread.
//
// Everything this package reads was written by, or next to, a process in a
// pod, while the agent runs privileged on the node. The input is therefore
// treated as hostile: every read is bounded, no allocation is sized by a value
// taken from the file, nothing panics, and damage is reported as an error.
// The summary is decoration: callers treat an error as "no summary" and upload
// the dump regardless.
//
// The package keeps no state between calls and is safe for concurrent use.
package inspect
