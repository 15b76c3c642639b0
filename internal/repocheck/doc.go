// Package repocheck holds tests of the repository itself rather than of
// code: files that must never be committed the way a failed merge leaves
// them. It has no code of its own.
package repocheck
