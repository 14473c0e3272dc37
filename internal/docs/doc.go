// Package docs holds tests that keep docs/ true to the tree: a package map
// that names a package that is gone, or misses a new one, fails the unit tier.
package docs
