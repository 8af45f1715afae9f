package collector

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// The bounds of crashdump_last_dump_timestamp_seconds with a clock the test
// turns: 32 series at most (a new container deletes the oldest; one seen
// again keeps its place), and a series goes 1 h after its last dump, on
// the next set or housekeeping.
func TestLastDumpsBounds(t *testing.T) {
	pod := func(i int) *manifest.Pod {
		return &manifest.Pod{Namespace: "prod", Name: fmt.Sprintf("api-%d", i), Container: "app"}
	}
	// step is one event: a dump of pod (nil: none attributed) after the
	// clock moved by advance, or with expire a housekeeping round.
	type step struct {
		advance time.Duration
		pod     *manifest.Pod
		expire  bool
	}
	fill := func(n int) []step {
		var s []step
		for i := range n {
			s = append(s, step{advance: time.Second, pod: pod(i)})
		}
		return s
	}
	for _, c := range []struct {
		name  string
		steps []step
		want  []*manifest.Pod // the series left
	}{
		{"one dump", []step{{pod: pod(0)}}, []*manifest.Pod{pod(0)}},
		{"not attributed", []step{{pod: nil}}, []*manifest.Pod{{}}},
		{"32 kept", fill(32), func() []*manifest.Pod {
			var p []*manifest.Pod
			for i := range 32 {
				p = append(p, pod(i))
			}
			return p
		}()},
		{"the 33rd evicts the oldest", fill(33), func() []*manifest.Pod {
			var p []*manifest.Pod
			for i := 1; i < 33; i++ {
				p = append(p, pod(i))
			}
			return p
		}()},
		{"a container seen again is the newest", append(append(fill(32), step{advance: time.Second, pod: pod(0)}), step{advance: time.Second, pod: pod(32)}),
			func() []*manifest.Pod {
				p := []*manifest.Pod{pod(0)}
				for i := 2; i < 33; i++ {
					p = append(p, pod(i))
				}
				return p
			}()},
		{"under 1 h kept", []step{{pod: pod(0)}, {advance: time.Hour - time.Second, expire: true}}, []*manifest.Pod{pod(0)}},
		{"1 h old expires in housekeeping", []step{{pod: pod(0)}, {advance: time.Hour, expire: true}}, nil},
		{"1 h old expires on the next set", []step{{pod: pod(0)}, {advance: 30 * time.Minute, pod: pod(1)}, {advance: 30 * time.Minute, pod: pod(2)}},
			[]*manifest.Pod{pod(1), pod(2)}},
		{"a new dump renews the hour", []step{{pod: pod(0)}, {advance: 50 * time.Minute, pod: pod(0)}, {advance: 50 * time.Minute, expire: true}},
			[]*manifest.Pod{pod(0)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := newMetrics(reg)
			now := time.Unix(1_700_000_000, 0)
			m.lastDump.now = func() time.Time { return now }
			set := map[dumpOwner]time.Time{}
			for _, s := range c.steps {
				now = now.Add(s.advance)
				if s.expire {
					m.lastDump.expire()
					continue
				}
				m.lastDump.set(s.pod)
				set[ownerOf(s.pod)] = now
			}
			if got := testutil.CollectAndCount(m.lastDump.gauge); got != len(c.want) {
				t.Errorf("%d series, want %d", got, len(c.want))
			}
			for _, p := range c.want {
				o := ownerOf(p)
				g, err := m.lastDump.gauge.GetMetricWithLabelValues(o.namespace, o.pod, o.container)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := testutil.ToFloat64(g), float64(set[o].Unix()); got != want {
					t.Errorf("%v = %v, want %v", o, got, want)
				}
			}
		})
	}
}
