// Package buildcache keeps what takes minutes to build (a pinned ESO
// release, an earlier release's images) as entries of the project's cache,
// so that a machine pays for each build once.
//
// An entry is a directory built whole in a temporary directory beside it and
// renamed into place, under a file lock beside it: concurrent builds of one
// entry, also from other test processes, build it once, and no reader sees a
// half-built entry. An entry holds a JSON manifest, written last, that says
// what it contains; an entry whose manifest is missing or does not read back
// is built again.
package buildcache
