// Package docs holds no code: its tests check that the commands the
// documentation tells an operator to type run as written.
//
// Every fenced sh, bash or console block of README.md and docs/*.md, and
// every inline code span that starts with "kubectl ", is parsed like a
// shell would (quotes, escapes, $VAR, $(…), pipes, redirections, here
// documents), and each kubectl command in it is checked:
//
//   - a variable captured from `kubectl … -o name` holds TYPE/NAME, so it
//     must not follow a resource type (`pod $POD` is `pod pod/x`);
//   - a variable captured from a command in namespace N is used with -n N;
//   - no --sort-by=.lastTimestamp (or .firstTimestamp): both are empty in
//     the events.k8s.io/v1 Events the agent posts;
//   - with a kubectl binary (./bin or the PATH), each mutating command whose
//     verb takes --dry-run is run with --dry-run=client against a
//     kubeconfig whose server is a closed port: only errors kubectl finds
//     before it talks to a server (unknown flags, TYPE TYPE/NAME, a missing
//     -f file) fail. No cluster is needed or reached.
package docs
