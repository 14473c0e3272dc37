// Package jobrun is sc-job's logic: drain every connection that is due
// (connection.Due: render and apply, or apply a deletion and remove the
// record; with RenderAll, every settled connection too), write each outcome
// into the record in one status write (none when a re-render changed
// nothing), a Warning Event per failure and one Event per run, log one
// readable line per step and per object, and summarise the run in one
// sentence for `kubectl logs`. A failure belongs to its connection: it is
// retried with a per-connection backoff (transient: Pending/Retrying;
// permanent: Failed; missing namespace: parked), and only a new permanent
// failure in this run fails the run. See docs/store.md.
//
// A run watches the records (one LIST, then a WATCH) and queues their work
// at two levels: due work before re-renders, so a request that arrives
// during a 10,000-connection re-render is taken by the next free worker,
// and the re-render's API requests wait in a rate budget of their own
// (Limiter), not in the one that request's are charged to.
// Idle, a run lingers (Config.Linger) for more work before it ends, so a
// burst of requests costs one pod start; Config.MaxRun bounds it.
package jobrun
