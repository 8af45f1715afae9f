// Package uploader moves a claimed dump into object storage: it streams the
// file through optional zstd compression into a store, verifies what the store
// holds, and writes the manifest beside the dump object.
package uploader
