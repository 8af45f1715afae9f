package inspect

import (
	"strings"
	"testing"
)

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/app/server", "/app/server"},
		{"/app/server --password=hunter2 --verbose", "/app/server --password=<redacted> --verbose"},
		{"/app/server -t abc123 -v", "/app/server -t <redacted> -v"},
		{"/app/server --token s3cr3t", "/app/server --token <redacted>"},
		{"dotnet /app/Shop.dll --urls=http://+:8080", "dotnet /app/Shop.dll --urls=<redacted>"},
		{"java -Xmx512m -Ddb.password=x -jar app.jar", "java -X<redacted> -Ddb.password=<redacted> -jar app.jar"},
		{"mysql -uroot -phunter2", "mysql -u<redacted> -p<redacted>"},
		{"psql postgres://u:pw@db/x", "psql <redacted>"},
		{"python3 main.py user:pw@host", "python3 main.py <redacted>"},
		{"/bin/app -config /etc/app.yaml -listen :80", "/bin/app -c<redacted> <redacted> -l<redacted> <redacted>"},
		{"java -server -cp /a -jar x.jar", "java -server -cp <redacted> -jar x.jar"},
		{"sh -c echo hi", "sh -c <redacted> <redacted>"},
		{"srv -- --x", "srv -- --x"},
		{"srv  --a=1   b", "srv --a=<redacted> <redacted>"},
	} {
		if got := RedactArgs(tc.in); got != tc.want {
			t.Errorf("RedactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestArgsFor(t *testing.T) {
	const in = "/app/server --password=hunter2"
	for _, tc := range []struct{ mode, want string }{
		{ArgsFull, in},
		{ArgsNone, ""},
		{ArgsRedacted, "/app/server --password=<redacted>"},
		{"", "/app/server --password=<redacted>"},
		{"bogus", "/app/server --password=<redacted>"},
	} {
		got := ArgsFor(in, tc.mode)
		if got != tc.want {
			t.Errorf("ArgsFor(%q) = %q, want %q", tc.mode, got, tc.want)
		}
		if tc.mode != ArgsFull && strings.Contains(got, "hunter2") {
			t.Errorf("mode %q leaks the password: %q", tc.mode, got)
		}
	}
}
