package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The configuration reference is generated from the flags: the committed
// docs/configuration.md must be exactly what gen-docs writes today, so a
// flag added, renamed or re-described without `make docs` fails here.
func TestConfigurationReferenceUpToDate(t *testing.T) {
	var buf bytes.Buffer
	if err := writeConfigReference(&buf, newRootCmd()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "configuration.md")
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run `make docs`", err)
	}
	if !bytes.Equal(have, buf.Bytes()) {
		t.Errorf("docs/configuration.md is out of date with the flag definitions: run `make docs` and commit it\n%s",
			docFirstDiff(string(have), buf.String()))
	}
}

// Every visible flag of every documented command has its own line, with its
// environment variable, in that command's section.
func TestEveryFlagHasALine(t *testing.T) {
	root := newRootCmd()
	var buf bytes.Buffer
	if err := writeConfigReference(&buf, root); err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	var cur string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(line, "## ") {
			cur = strings.TrimPrefix(line, "## ")
			continue
		}
		sections[cur] += line + "\n"
	}
	cmds := docCommands(root)
	var agentSeen bool
	n := 0
	for _, c := range cmds {
		agentSeen = agentSeen || c.Name() == "agent"
		sec, ok := sections[c.CommandPath()]
		if !ok {
			t.Errorf("no section for %s", c.CommandPath())
			continue
		}
		for _, f := range docFlags(c) {
			n++
			want := "`--" + f.Name + "` | " + envCell(f.Name) + " |"
			if !strings.Contains(sec, want) {
				t.Errorf("%s: flag --%s has no line %q", c.CommandPath(), f.Name, want)
			}
		}
	}
	if !agentSeen {
		t.Error("the agent command is not documented")
	}
	// The agent's fixed flag names are all there.
	for _, name := range []string{"dump-dir", "state-dir", "store", "s3-endpoint", "s3-region", "node-name",
		"pod-source", "kubelet-url", "kubelet-token-file", "kubelet-ca-file", "kubelet-insecure-skip-tls-verify",
		"proc-root", "listen-address", "compression", "settle-time", "once"} {
		if !strings.Contains(sections["crashdump agent"], "`--"+name+"`") {
			t.Errorf("agent flag --%s missing from the reference", name)
		}
	}
	if n < 30 {
		t.Errorf("only %d flags documented; the walk is broken", n)
	}
}

// A hidden flag stays out; a new visible one is caught by the line check.
func TestGenDocsCatchesANewFlag(t *testing.T) {
	root := newRootCmd()
	var before bytes.Buffer
	if err := writeConfigReference(&before, root); err != nil {
		t.Fatal(err)
	}
	agent, _, err := root.Find([]string{"agent"})
	if err != nil {
		t.Fatal(err)
	}
	agent.Flags().String("brand-new-flag", "x", "a flag somebody just added")
	var after bytes.Buffer
	if err := writeConfigReference(&after, root); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(before.Bytes(), after.Bytes()) {
		t.Fatal("adding a flag did not change the reference: the up-to-date test could not catch it")
	}
	if !strings.Contains(after.String(), "| `--brand-new-flag` | `CRASHDUMP_BRAND_NEW_FLAG` | string | `x` | a flag somebody just added |") {
		t.Errorf("new flag's line missing or malformed:\n%s", after.String())
	}
}

func docFirstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "first difference at line " + strconv.Itoa(i+1) + ":\n  committed: " + x + "\n  generated: " + y
		}
	}
	return ""
}
