package inspect

import "strings"

// Command-line modes for what a manifest keeps of a core's pr_psargs
// (--core-args). The command line is the one place a dump hands the
// manifest something a user may have meant to keep secret:
// `--password=…`, a token after `-t`, a connection string.
const (
	ArgsFull     = "full"     // as the core recorded it
	ArgsRedacted = "redacted" // executable and flag names, no values (the default)
	ArgsNone     = "none"     // nothing
)

// Redacted is what replaces a value in a redacted command line.
const Redacted = "<redacted>"

// programSuffixes name the positional arguments kept by RedactArgs: the
// script, assembly or archive an interpreter runs is the program, not a
// value (`dotnet Shop.dll`, `java -jar app.jar`, `python3 main.py`), and
// `describe` tells a .NET core by it.
var programSuffixes = []string{".dll", ".exe", ".jar", ".py", ".js", ".mjs", ".cjs", ".rb", ".pl", ".php", ".sh"}

// ArgsFor returns args as mode keeps it (ArgsRedacted for an unknown mode:
// the safe side).
func ArgsFor(args, mode string) string {
	switch mode {
	case ArgsFull:
		return args
	case ArgsNone:
		return ""
	}
	return RedactArgs(args)
}

// RedactArgs keeps of a command line (pr_psargs: arguments joined by
// single spaces, so a value with a space in it reads as two words) the
// first word, the executable, and the names of flags, and replaces every
// value with Redacted:
//
//	/app/server --password=hunter2 -t abc --verbose  →
//	/app/server --password=<redacted> -t <redacted> --verbose
//
// A word after a flag is a value unless it is a flag itself; so is any
// other positional word, except a program file (programSuffixes). A value
// glued to a one-letter flag (`-proot`, as mysql takes it) cannot be told
// from a one-dash flag name (`-config`), so a one-dash word keeps only its
// first letter (`-p<redacted>`, `-c<redacted>`), except the few well-known
// interpreter flags of singleDashFlags. Safe for concurrent use.
func RedactArgs(args string) string {
	words := strings.Fields(args)
	if len(words) == 0 {
		return ""
	}
	out := make([]string, 0, len(words))
	out = append(out, words[0])
	for _, w := range words[1:] {
		out = append(out, redactWord(w))
	}
	return strings.Join(out, " ")
}

func redactWord(w string) string {
	if w == "-" || w == "--" {
		return w
	}
	if strings.HasPrefix(w, "-") {
		if i := strings.IndexByte(w, '='); i > 0 {
			return w[:i+1] + Redacted
		}
		if strings.HasPrefix(w, "--") || len(w) == 2 || singleDashFlags[w[1:]] {
			return w
		}
		// -Xmx512m, -phunter2, -config: the first letter is the flag.
		return w[:2] + Redacted
	}
	if !strings.ContainsAny(w, "=:@") {
		lw := strings.ToLower(w)
		for _, s := range programSuffixes {
			if strings.HasSuffix(lw, s) && len(lw) > len(s) {
				return w
			}
		}
	}
	return Redacted
}

// singleDashFlags are one-dash words kept whole: flags of the JVM and
// interpreters that take no glued value.
var singleDashFlags = map[string]bool{
	"jar": true, "cp": true, "classpath": true, "server": true, "client": true,
	"version": true, "help": true, "verbose": true, "debug": true,
}
