package staging

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

type rec struct {
	Path string `json:"path"`
	Step int    `json:"step"`
}

func TestEntryLifecycle(t *testing.T) {
	state := t.TempDir()
	d, err := Open(context.Background(), state, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	id := "0123456789abcdef0123456789abcdef"
	e, err := d.Create(id, &rec{Path: "ns/core", Step: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create("../evil", &rec{}); err == nil {
		t.Error("created an entry with a bad id")
	}
	if err := e.Save(&rec{Path: "ns/core", Step: 2}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.Path(DumpName), []byte("dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries, err := d.Entries()
	if err != nil || len(entries) != 1 || entries[0].ID != id {
		t.Fatalf("entries %v %v", entries, err)
	}
	var got rec
	if err := entries[0].Load(&got); err != nil || got.Step != 2 || got.Path != "ns/core" {
		t.Fatalf("loaded %+v %v", got, err)
	}
	if !entries[0].Has(DumpName) || entries[0].Has(CrashReportName) {
		t.Error("Has")
	}
	if err := d.Remove(entries[0]); err != nil {
		t.Fatal(err)
	}
	if entries, _ := d.Entries(); len(entries) != 0 {
		t.Errorf("entry left after Remove: %v", entries)
	}
}

func TestOneAgentPerStateDir(t *testing.T) {
	state := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	first, err := Open(context.Background(), state, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, state, log); err == nil {
		t.Fatal("a second agent got the state directory")
	}
	got := make(chan error, 1)
	go func() {
		d, err := Open(context.Background(), state, log)
		if err == nil {
			d.Close()
		}
		got <- err
	}()
	first.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting agent: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting agent never got the lock")
	}
}
