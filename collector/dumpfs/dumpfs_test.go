package dumpfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// tree builds a dump directory with a symlinked directory inside it and a
// secret outside it.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "dumps")
	outside = filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "ns", "pod"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, b := range map[string]string{
		filepath.Join(root, "ns", "pod", "core"): "dump",
		filepath.Join(outside, "secret"):         "secret",
	} {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ns", filepath.Join(root, "alias")); err != nil { // points inside
		t.Fatal(err)
	}
	return root, outside
}

// both runs f with openat2 and with the component-by-component fallback.
func both(t *testing.T, f func(t *testing.T, r *Root)) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) {
			root, _ := tree(t)
			r, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.noOpenat2.Store(fallback)
			f(t, r)
		})
	}
}

func TestLstatNeverFollows(t *testing.T) {
	both(t, func(t *testing.T, r *Root) {
		tests := []struct {
			rel     string
			wantErr error
			mode    fs.FileMode
		}{
			{"ns/pod/core", nil, 0},
			{"escape", nil, fs.ModeSymlink},        // the link itself
			{"escape/secret", unix.ELOOP, 0},       // through a link: refused
			{"alias/pod/core", unix.ELOOP, 0},      // even a link that stays inside
			{"ns/../escape/secret", ErrBadPath, 0}, // no dot-dot
			{"/etc/passwd", ErrBadPath, 0},         // no absolute paths
			{"ns//pod", ErrBadPath, 0},             // no empty components
			{"ns/pod/missing", fs.ErrNotExist, 0},
		}
		for _, tc := range tests {
			info, err := r.Lstat(tc.rel)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) && !(tc.wantErr == unix.ELOOP && refused(err)) {
					t.Errorf("Lstat(%q) = %v, want %v", tc.rel, err, tc.wantErr)
				}
				continue
			}
			if err != nil {
				t.Errorf("Lstat(%q): %v", tc.rel, err)
				continue
			}
			if info.Mode.Type() != tc.mode {
				t.Errorf("Lstat(%q) type %v, want %v", tc.rel, info.Mode.Type(), tc.mode)
			}
		}
	})
}

func TestReadDir(t *testing.T) {
	both(t, func(t *testing.T, r *Root) {
		got := map[string]fs.FileMode{}
		entries, err := r.ReadDir(".")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			got[e.Name] = e.Mode.Type()
		}
		want := map[string]fs.FileMode{"ns": fs.ModeDir, "escape": fs.ModeSymlink, "alias": fs.ModeSymlink}
		for n, m := range want {
			if got[n] != m {
				t.Errorf("entry %s: type %v, want %v (all %v)", n, got[n], m, got)
			}
		}
		if _, err := r.ReadDir("escape"); !refused(err) {
			t.Errorf("ReadDir through a link: %v, want refused", err)
		}
	})
}

func TestClaim(t *testing.T) {
	both(t, func(t *testing.T, r *Root) {
		dst, err := os.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		// Same filesystem? t.TempDir and the tree share one base only if
		// TMPDIR is one filesystem, which it is in tests.
		info, err := r.Claim("ns/pod/core", dst, "dump")
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if info.Size != 4 || !info.IsRegular() {
			t.Errorf("claim info %+v", info)
		}
		if _, err := r.Lstat("ns/pod/core"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("name still taken after claim: %v", err)
		}
		b, err := os.ReadFile(filepath.Join(dst.Name(), "dump"))
		if err != nil || string(b) != "dump" {
			t.Fatalf("claimed file: %q %v", b, err)
		}
		// Never replaces what is already there.
		if err := os.WriteFile(filepath.Join(r.Path(), "ns", "pod", "core"), []byte("second"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Claim("ns/pod/core", dst, "dump"); !errors.Is(err, unix.EEXIST) {
			t.Errorf("claim onto an existing name: %v, want EEXIST", err)
		}
		if _, err := r.Claim("alias/pod/core", dst, "other"); !refused(err) {
			t.Errorf("claim through a link: %v, want ELOOP", err)
		}
		if _, err := r.Claim("escape", dst, "link"); err != nil {
			t.Errorf("claiming the link itself (the caller checks what arrived): %v", err)
		}
		if fi, err := os.Lstat(filepath.Join(dst.Name(), "link")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("claimed link should arrive as a link, not its target: %v", err)
		}
	})
}

// refused is how the kernel says no to a symlink on the way: ELOOP for a
// link in the middle (RESOLVE_NO_SYMLINKS), ENOTDIR for a link where a
// directory was required (O_NOFOLLOW|O_DIRECTORY).
func refused(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

func TestEnsureDir(t *testing.T) {
	both(t, func(t *testing.T, r *Root) {
		if err := r.EnsureDir("prod", fs.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(r.Path(), "prod"))
		if err != nil || !fi.IsDir() || fi.Mode()&fs.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
			t.Fatalf("prod: %v %v", fi.Mode(), err)
		}
		// Idempotent, and it fixes the mode of an existing directory.
		if err := os.Chmod(filepath.Join(r.Path(), "prod"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := r.EnsureDir("prod", fs.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Lstat(filepath.Join(r.Path(), "prod")); fi.Mode().Perm() != 0o777 {
			t.Errorf("mode not restored: %v", fi.Mode())
		}
		// A link in its place is refused, and its target left alone.
		if err := r.EnsureDir("escape", 0o777); !refused(err) {
			t.Errorf("EnsureDir over a link: %v", err)
		}
		for _, bad := range []string{"a/b", "..", ""} {
			if err := r.EnsureDir(bad, 0o777); err == nil {
				t.Errorf("EnsureDir(%q) accepted", bad)
			}
		}
	})
}
