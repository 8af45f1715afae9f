// Package collector is the node side of crashdump's data flow: it discovers
// dump files under the dump directory, claims them out of the writers' reach,
// waits for them to settle, attributes them to a pod and hands them to the
// uploader, removing the node copy only after the store has confirmed it.
package collector
