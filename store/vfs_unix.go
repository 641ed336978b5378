//go:build unix

package store

// vfsParam picks SQLite's unix-excl VFS for messages.db: this process
// takes the file's lock once and keeps it, and the write-ahead log's
// index lives in this process's memory instead of a shared -shm file, so
// a transaction takes no fcntl locks (a third of a one-message commit's
// CPU in BenchmarkCommit). Connections of this process share the file as
// before; another process cannot open it while the node runs, which also
// keeps a second node off a data directory in use (two would hand out the
// same seqs).
const vfsParam = "vfs=unix-excl&"
