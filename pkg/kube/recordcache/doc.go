// Package recordcache decodes each version of each connection record once,
// as the records informer stores it, and keeps a small summary of that
// version (Version) for the controllers that decide from a record's state
// without rendering it: a sync or an event handler then reads the summary
// instead of decoding the ConfigMap again, and a version that cannot be
// decoded is logged once, when it is stored, not on every look. The
// leader's records informer goes further: its transform decodes each
// version once, attaches the summary to the object it caches (Attach) and
// drops the record's data, which no controller of the leader reads.
package recordcache
