//go:build !unix

package store

// vfsParam is empty off Unix: SQLite's default VFS there.
const vfsParam = ""
