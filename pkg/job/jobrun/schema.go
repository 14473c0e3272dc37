package jobrun

// skipNewer logs a record a newer release wrote, once per version. sc-job
// may neither render nor fail it (a status write would drop what it cannot
// read), and it is not corrupt: that release handles it once it runs
// again. So it is skipped and does not fail the run.
func (r *Runner) skipNewer(id string, err error) {
	r.log.Warn().Str("step", "list").Str("objectId", id).Err(err).
		Msgf("skipped: newer schema: connection record %s was written by a newer release and is left to it", id)
}
