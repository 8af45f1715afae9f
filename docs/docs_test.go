package docs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// repoRoot is where `kubectl apply -f deploy/…` and the docs' paths start.
const repoRoot = ".."

// docFiles are the documents whose commands are checked: every doc, so a
// runbook added later is covered too.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	return files
}

// minCommands is how many kubectl commands a runbook must yield at least:
// a parser that silently found nothing would pass every check.
var minCommands = map[string]int{
	"operations.md": 15,
	"install.md":    8,
}

// TestRunbookCommands checks every kubectl command of the docs' sh, bash
// and console blocks and inline `kubectl …` spans (see the package
// comment).
func TestRunbookCommands(t *testing.T) {
	k := newKubectl(t)
	for _, f := range docFiles(t) {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := checkDoc(name, string(b), k)
			for _, p := range r.problems {
				t.Error(p)
			}
			for _, s := range r.notes {
				t.Log(s)
			}
			t.Logf("%d kubectl commands checked, %d run with --dry-run=client", r.kubectl, r.dryRuns)
			if want := minCommands[name]; r.kubectl < want {
				t.Errorf("found only %d kubectl commands in %s, want at least %d: is the extraction broken?", r.kubectl, name, want)
			}
		})
	}
}

// TestChecksCatch feeds the checks the mistakes they exist for, so that
// they are known to fire whatever the docs say today.
func TestChecksCatch(t *testing.T) {
	k := newKubectl(t)
	cases := []struct {
		name, doc, want string
		needsKubectl    bool
	}{
		{"pod after -o name", "```sh\nPOD=$(kubectl -n crashdump get pods -l app=x \\\n  -o name)\nkubectl -n crashdump describe pod $POD\n```\n",
			"`pod $POD`", false},
		{"pod after -o=name, quoted use", "```bash\nPOD=$(kubectl -n crashdump get pods -o=name | head -1)\nkubectl -n crashdump delete pods \"$POD\"\n```\n",
			"`pods $POD`", false},
		{"inline use, other namespace", "```sh\nPOD=$(kubectl -n crashdump get pods -o jsonpath='{.items[0].metadata.name}')\n```\nRestart it (`kubectl delete pod $POD`).\n",
			"without -n crashdump", false},
		{"sort by lastTimestamp", "```sh\nkubectl get events -A --sort-by=.lastTimestamp | tail\n```\n",
			".lastTimestamp", false},
		{"sort by lastTimestamp, separate value", "```console\n$ kubectl get ev --sort-by '{.lastTimestamp}'\n```\n",
			".lastTimestamp", false},
		{"unterminated quote", "```sh\nkubectl -n crashdump logs 'x\n```\n", "unterminated single quote", false},
		{"dry run: unknown flag", "```sh\nkubectl -n crashdump delete pod x --no-such-flag\n```\n", "unknown flag", true},
		{"dry run: missing file", "```sh\nkubectl apply -f deploy/no-such-file.yaml\n```\n", "does not exist", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needsKubectl && k == nil {
				t.Skip("no kubectl in ./bin or the PATH")
			}
			r := checkDoc("case.md", c.doc, k)
			if !slices.ContainsFunc(r.problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("want a problem mentioning %q, got %q", c.want, r.problems)
			}
		})
	}
	// And what is right passes.
	good := "```sh\nNODE=n1\nPOD=$(kubectl -n crashdump get pods --field-selector spec.nodeName=$NODE \\\n" +
		"  -o jsonpath='{.items[0].metadata.name}')\nkubectl -n crashdump describe pod $POD\n" +
		"kubectl events -A --types=Warning | grep CrashDumpUploaded\n```\n" +
		"Restart it (`kubectl -n crashdump delete pod $POD`).\n"
	if r := checkDoc("good.md", good, k); len(r.problems) > 0 || r.kubectl != 4 {
		t.Errorf("good commands: %d kubectl commands, problems %q", r.kubectl, r.problems)
	}
}

// TestShellParser pins the word splitting the checks rely on.
func TestShellParser(t *testing.T) {
	cases := []struct {
		src  string
		want []string // each command's words, joined by " | "
	}{
		{`a 'b c' "d $X e" f\ g`, []string{`a | b c | d $X e | f g`}},
		{"a \\\n  b # comment\nc;d && e || f | g &", []string{"a | b", "c", "d", "e", "f", "g"}},
		{`P=$(kubectl get pods -o name | head -1) x`, []string{"P=$(…) | x", "kubectl | get | pods | -o | name", "head | -1"}},
		{"cat > f <<'EOF'\n$(not a command) 'unbalanced\nEOF\nnext 2>&1 >/dev/null", []string{"cat", "next"}},
		{"cat <<-EOF | x\n\tbody\n\tEOF\ny", []string{"cat", "x", "y"}},
		{`kubectl crashdump ls --node <node> s3://<b>/<p>/`, []string{`kubectl | crashdump | ls | --node | <node> | s3://<b>/<p>/`}},
		{`a "${V:-x}" '' "" $1`, []string{`a | $V |  |  | $1`}},
		{`sh -c 'ls | head; echo "$x"' &> log`, []string{`sh | -c | ls | head; echo "$x"`}},
		{"(cd d && make)", []string{"cd | d", "make"}},
		{"echo `date` $((1+2))", []string{"echo | $(…) | $((1+2))", "date"}},
		{"source <(crashdump completion bash) # <TAB>", []string{"source | $(…)", "crashdump | completion | bash"}},
	}
	for _, c := range cases {
		cmds, err := parseShell(c.src)
		if err != nil {
			t.Errorf("%q: %v", c.src, err)
			continue
		}
		var got []string
		var walk func([]*command)
		walk = func(cs []*command) {
			for _, cmd := range cs {
				var ws []string
				for _, w := range cmd.words {
					ws = append(ws, w.String())
				}
				got = append(got, strings.Join(ws, " | "))
				for _, w := range cmd.words {
					for _, p := range w.parts {
						if p.kind == partSub {
							walk(p.sub)
						}
					}
				}
			}
		}
		walk(cmds)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	for _, bad := range []string{`a 'b`, `a "b`, `a $(b`, "cat <<EOF\nbody", `a )`, `a >`} {
		if _, err := parseShell(bad); err == nil {
			t.Errorf("%q: parsed without error", bad)
		}
	}
}

// snippet is a piece of a doc to parse as shell.
type snippet struct {
	line int    // of the doc, where the snippet starts
	text string // the shell text
}

var (
	fenceRE     = regexp.MustCompile("^(\\s*)(`{3,}|~{3,})\\s*([^`\\s]*)")
	shellLang   = map[string]bool{"sh": true, "bash": true, "shell": true, "zsh": true}
	consoleLang = map[string]bool{"console": true, "shell-session": true}
)

// extract returns the doc's shell snippets in order: every command of an
// sh/bash block (the whole block), every "$ " command of a console block,
// every inline code span that starts with "kubectl ".
func extract(doc string) []snippet {
	lines := strings.Split(doc, "\n")
	var out []snippet
	var prose []string // prose lines since the last fence
	proseStart := 1
	flushProse := func() {
		out = append(out, inlineSpans(strings.Join(prose, "\n"), proseStart)...)
		prose = nil
	}
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			if prose == nil {
				proseStart = i + 1
			}
			prose = append(prose, lines[i])
			continue
		}
		flushProse()
		indent, fence, lang := len(m[1]), m[2], strings.ToLower(m[3])
		closeRE := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(fence[:1]) + `{` + fmt.Sprint(len(fence)) + `,}\s*$`)
		var body []string
		start := i + 2
		for i++; i < len(lines) && !closeRE.MatchString(lines[i]); i++ {
			l := lines[i]
			for n := 0; n < indent && strings.HasPrefix(l, " "); n++ {
				l = l[1:]
			}
			body = append(body, l)
		}
		switch {
		case shellLang[lang]:
			out = append(out, snippet{line: start, text: strings.Join(body, "\n")})
		case consoleLang[lang]:
			for j := 0; j < len(body); j++ {
				cmd, ok := strings.CutPrefix(body[j], "$ ")
				if !ok {
					continue
				}
				first := j
				for strings.HasSuffix(cmd, "\\") && j+1 < len(body) {
					j++
					cmd += "\n" + strings.TrimPrefix(body[j], "> ")
				}
				out = append(out, snippet{line: start + first, text: cmd})
			}
		}
	}
	flushProse()
	return out
}

// inlineSpans finds the `kubectl …` code spans of a run of prose lines.
func inlineSpans(text string, firstLine int) []snippet {
	var out []snippet
	for i := 0; i < len(text); {
		if text[i] != '`' {
			i++
			continue
		}
		n := 0
		for i+n < len(text) && text[i+n] == '`' {
			n++
		}
		open := i
		i += n
		// The closing run is exactly n backticks.
		end := -1
		for j := i; j < len(text); {
			if text[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(text) && text[j+m] == '`' {
				m++
			}
			if m == n {
				end = j
				break
			}
			j += m
		}
		if end < 0 {
			continue // a lone backtick run is literal
		}
		code := strings.ReplaceAll(text[i:end], "\n", " ")
		if len(code) > 2 && code[0] == ' ' && code[len(code)-1] == ' ' {
			code = code[1 : len(code)-1]
		}
		if strings.HasPrefix(code, "kubectl ") {
			out = append(out, snippet{line: firstLine + strings.Count(text[:open], "\n"), text: code})
		}
		i = end + n
	}
	return out
}

// varInfo is what the checks know of a shell variable.
type varInfo struct {
	kind      string // set when it holds KIND/NAME (captured with -o name)
	namespace string // the -n of the kubectl command that produced it
	sample    string // a value for running commands
	where     string // doc:line of the assignment
}

type report struct {
	problems []string
	notes    []string
	kubectl  int // kubectl commands checked
	dryRuns  int // of them, run with --dry-run=client
}

type checker struct {
	doc  string
	vars map[string]varInfo
	k    *kubectl
	r    report
}

// checkDoc checks the commands of one doc, its snippets in order (a
// variable set in one block is known in the blocks after it).
func checkDoc(name, doc string, k *kubectl) report {
	c := &checker{doc: name, vars: map[string]varInfo{}, k: k}
	for _, s := range extract(doc) {
		cmds, err := parseShell(s.text)
		if err != nil {
			c.r.problems = append(c.r.problems, fmt.Sprintf("%s:%d: does not parse as shell: %v", name, s.line, err))
			continue
		}
		c.walk(cmds, s.line)
	}
	return c.r
}

func (c *checker) walk(cmds []*command, base int) {
	for _, cmd := range cmds {
		where := fmt.Sprintf("%s:%d", c.doc, base+cmd.line-1)
		// Substitutions run first.
		for _, w := range cmd.words {
			for _, p := range w.parts {
				if p.kind == partSub {
					c.walk(p.sub, base+cmd.line-1)
				}
			}
		}
		words := cmd.words
		if len(words) > 0 {
			if l, _ := words[0].lit(); l == "export" || l == "local" || l == "readonly" {
				words = words[1:]
			}
		}
		assigned := map[string]varInfo{}
		for len(words) > 0 {
			name, val, ok := words[0].assignment()
			if !ok {
				break
			}
			assigned[name] = c.capture(val, where)
			words = words[1:]
		}
		for len(words) > 0 {
			if l, ok := words[0].lit(); ok && slices.Contains([]string{"{", "!", "if", "then", "else", "elif", "do", "while", "until", "time"}, l) {
				words = words[1:]
				continue
			}
			break
		}
		if len(words) == 0 { // only assignments: they persist
			for n, v := range assigned {
				c.vars[n] = v
			}
			continue
		}
		if l, _ := words[0].lit(); l == "kubectl" {
			c.kubectl(words[1:], where)
		}
	}
}

// capture describes the value of an assignment.
func (c *checker) capture(val word, where string) varInfo {
	info := varInfo{where: where, sample: c.render(val)}
	for _, p := range val.parts {
		if p.kind != partSub {
			continue
		}
		for _, sc := range p.sub {
			if l, _ := sc.words[0].lit(); l != "kubectl" || len(sc.words) < 2 {
				continue
			}
			a := parseKubectl(sc.words[1:])
			info.namespace = a.namespace
			if a.outputName {
				info.kind = "pod"
				if len(a.positional) > 1 {
					if l, ok := a.positional[1].lit(); ok {
						info.kind = singular(l)
					}
				}
				info.sample = info.kind + "/crashdump-x7k2p"
			} else {
				info.sample = "crashdump-x7k2p"
			}
			break
		}
	}
	return info
}

// kubectlArgs is a kubectl command line taken apart.
type kubectlArgs struct {
	args       []word
	dashDash   int // index of "--" in args, or len(args)
	positional []word
	namespace  string
	allNS      bool
	outputName bool
	dryRun     bool
	sortBy     []string
}

// valueFlags are the kubectl flags the docs use that take a value as the
// next word (the rest are booleans or written --flag=value).
var valueFlags = map[string]bool{
	"-n": true, "--namespace": true, "--context": true, "--kubeconfig": true, "--cluster": true,
	"--user": true, "-s": true, "--server": true, "--as": true, "--as-group": true, "--token": true,
	"--request-timeout": true, "-v": true, "--cache-dir": true,
	"-l": true, "--selector": true, "--field-selector": true, "-o": true, "--output": true,
	"-c": true, "--container": true, "-f": true, "--filename": true, "--image": true,
	"--for": true, "--types": true, "--sort-by": true, "--since": true, "--tail": true,
	"--overrides": true, "--restart": true, "--from-literal": true, "--from-file": true,
	"-p": true, "--patch": true, "--type": true, "--timeout": true, "--template": true,
	"--pod": true, "--node": true, "--limit": true, "--until": true, "--store": true,
}

func parseKubectl(args []word) kubectlArgs {
	a := kubectlArgs{args: args, dashDash: len(args)}
	for i := 0; i < len(args); i++ {
		s, isLit := args[i].lit()
		if isLit && s == "--" {
			a.dashDash = i
			break
		}
		if !isLit || !strings.HasPrefix(s, "-") || s == "-" {
			a.positional = append(a.positional, args[i])
			continue
		}
		var flag, val string
		var hasVal bool
		if !strings.HasPrefix(s, "--") && len(s) > 2 && valueFlags[s[:2]] {
			flag, val, hasVal = s[:2], strings.TrimPrefix(s[2:], "="), true // -ncrashdump, -oname, -o=name
		} else {
			flag, val, hasVal = strings.Cut(s, "=")
		}
		takesValue := valueFlags[flag]
		if len(a.positional) > 0 && (flag == "-f" || flag == "-p") {
			if verb, _ := a.positional[0].lit(); verb == "logs" {
				takesValue = false // --follow, --previous
			}
		}
		if !hasVal && takesValue && i+1 < len(args) {
			i++
			val = args[i].String()
		}
		switch flag {
		case "-n", "--namespace":
			a.namespace = val
		case "-A", "--all-namespaces":
			a.allNS = val != "false"
		case "-o", "--output":
			a.outputName = val == "name"
		case "--sort-by":
			a.sortBy = append(a.sortBy, val)
		case "--dry-run":
			a.dryRun = true
		}
	}
	return a
}

// kindWords are resource types a TYPE/NAME must not follow.
var kindWords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`pod pods po node nodes no service services svc deployment deployments deploy
		daemonset daemonsets ds statefulset statefulsets sts replicaset replicasets rs job jobs cronjob cronjobs cj
		configmap configmaps cm secret secrets persistentvolumeclaim persistentvolumeclaims pvc persistentvolume
		persistentvolumes pv namespace namespaces ns serviceaccount serviceaccounts sa event events ev
		servicemonitor servicemonitors podmonitor podmonitors`) {
		kindWords[k] = true
	}
}

func singular(kind string) string {
	switch kind {
	case "po", "pods":
		return "pod"
	case "no", "nodes":
		return "node"
	case "ds", "daemonsets":
		return "daemonset"
	}
	return strings.TrimSuffix(kind, "s")
}

// mutatingVerbs are the kubectl commands that change objects, with the
// subcommands that do when not all do. Those that take no --dry-run (rollout
// restart) are found out by running them, and skipped.
var mutatingVerbs = map[string][]string{
	"annotate": nil, "apply": nil, "autoscale": nil, "cordon": nil, "create": nil, "delete": nil,
	"drain": nil, "expose": nil, "label": nil, "patch": nil, "replace": nil, "run": nil, "scale": nil,
	"set": nil, "taint": nil, "uncordon": nil,
	"rollout": {"pause", "restart", "resume", "undo"},
}

func mutating(positional []word) bool {
	if len(positional) == 0 {
		return false
	}
	verb, _ := positional[0].lit()
	subs, ok := mutatingVerbs[verb]
	if !ok || subs == nil {
		return ok
	}
	if len(positional) < 2 {
		return false
	}
	sub, _ := positional[1].lit()
	return slices.Contains(subs, sub)
}

// kubectl checks one kubectl command (the words after "kubectl").
func (c *checker) kubectl(args []word, where string) {
	c.r.kubectl++
	a := parseKubectl(args)
	problem := func(format string, v ...any) {
		c.r.problems = append(c.r.problems, where+": "+fmt.Sprintf(format, v...))
	}
	for _, s := range a.sortBy {
		if strings.Contains(s, "lastTimestamp") || strings.Contains(s, "firstTimestamp") {
			problem("--sort-by %s: empty in the events.k8s.io/v1 Events the agent posts (use `kubectl events --types=Warning`, which sorts by event time)", s)
		}
	}
	for i := 0; i < a.dashDash; i++ {
		w := args[i]
		// TYPE $VAR where $VAR holds TYPE/NAME; TYPE/$VAR likewise.
		if v := w.onlyVar(); v != "" && i > 0 {
			if info := c.vars[v]; info.kind != "" {
				if prev, ok := args[i-1].lit(); ok && kindWords[prev] {
					problem("`%s $%s`: $%s holds %s/NAME (-o name, %s), so kubectl is given `%s %s/NAME`", prev, v, v, info.kind, info.where, prev, info.kind)
				}
			}
		}
		if len(w.parts) >= 2 && w.parts[0].kind == partLit && strings.HasSuffix(w.parts[0].text, "/") && w.parts[1].kind == partVar {
			if info := c.vars[w.parts[1].text]; info.kind != "" {
				problem("`%s`: $%s holds %s/NAME (-o name, %s) already", w, w.parts[1].text, info.kind, info.where)
			}
		}
		for _, v := range w.vars() {
			if info := c.vars[v]; info.namespace != "" && !a.allNS && a.namespace != info.namespace {
				problem("uses $%s, from namespace %s (%s), without -n %s", v, info.namespace, info.where, info.namespace)
			}
		}
	}
	if c.k == nil || a.dryRun || !mutating(a.positional) {
		return
	}
	verb, _ := a.positional[0].lit()
	var argv []string
	for i, w := range args {
		if i == a.dashDash {
			argv = append(argv, "--dry-run=client")
		}
		s := c.render(w)
		if verb == "run" && i < a.dashDash && slices.Contains([]string{"-i", "-t", "-it", "-ti", "--stdin", "--tty", "--attach", "--rm"}, strings.Split(s, "=")[0]) {
			continue // attached or removed containers refuse --dry-run; the rest is checked
		}
		argv = append(argv, s)
	}
	if a.dashDash == len(args) {
		argv = append(argv, "--dry-run=client")
	}
	c.r.dryRuns++
	out, applies := c.k.dryRun(argv)
	if !applies {
		c.r.dryRuns--
		c.r.notes = append(c.r.notes, fmt.Sprintf("%s: kubectl %s takes no --dry-run: not run", where, strings.Join(argv, " ")))
		return
	}
	if out != "" {
		problem("kubectl %s: %s", strings.Join(argv, " "), out)
	}
}

// render gives a word a value: variables their sample, placeholders
// their name.
func (c *checker) render(w word) string {
	var b strings.Builder
	for _, p := range w.parts {
		switch p.kind {
		case partLit:
			b.WriteString(p.text)
		case partVar:
			if info, ok := c.vars[p.text]; ok {
				b.WriteString(info.sample)
			} else {
				b.WriteString(strings.ToLower(p.text))
			}
		case partSub:
			b.WriteString("crashdump-x7k2p")
		case partPlaceholder:
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// kubectl runs the real kubectl against a server that is not there.
type kubectl struct {
	path string
	env  []string
}

// newKubectl finds kubectl in ./bin, else on the PATH; nil without one.
func newKubectl(t *testing.T) *kubectl {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(repoRoot, "bin", "kubectl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		if path, err = exec.LookPath("kubectl"); err != nil {
			t.Log("no kubectl in ./bin or the PATH: commands are parsed and checked, not run")
			return nil
		}
	}
	home := t.TempDir()
	// A closed port on loopback: kubectl fails at its first request, after
	// it has checked what it can check alone. Never the user's kubeconfig.
	cfg := filepath.Join(home, "config")
	if err := os.WriteFile(cfg, []byte(`apiVersion: v1
kind: Config
clusters:
- name: none
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: none
  user: {token: none}
contexts:
- name: none
  context: {cluster: none, user: none, namespace: default}
current-context: none
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return &kubectl{path: path, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "KUBECONFIG=" + cfg}}
}

// dryRun runs kubectl and returns what it complained about, "" when it
// either succeeded or got as far as trying to reach the server; applies is
// false when the command has no --dry-run flag.
func (k *kubectl) dryRun(argv []string) (complaint string, applies bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.path, argv...)
	cmd.Dir = repoRoot
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "", true
	}
	if strings.Contains(string(out), "unknown flag: --dry-run") {
		return "", false
	}
	var rest []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "127.0.0.1:1") {
			rest = append(rest, l)
		}
	}
	if len(rest) == 0 {
		return "", true
	}
	return fmt.Sprintf("%v: %s", err, strings.Join(rest, " / ")), true
}
