//! The node's pull jobs: started, stopped and retried with backoff to
//! match the desired state (each job is a worker of [`crate::archive::pull`]).

use super::*;

impl Node {
    /// Converges the pull jobs to `wanted`: stops jobs that are gone or
    /// changed, starts new ones. Refuses (changing nothing) when `wanted`
    /// exceeds [`BuildOptions::max_pulls`].
    pub(super) fn apply_pulls(
        &mut self,
        wanted: &[PullSpec],
        events: &mut Vec<EngineToCtl>,
    ) -> Result<(), NodeError> {
        if wanted.len() > self.options.max_pulls {
            return Err(NodeError::TooManyPulls { wanted: wanted.len(), max: self.options.max_pulls });
        }
        let stale: Vec<Name> = self
            .pulls
            .iter()
            .filter(|(name, job)| !wanted.iter().any(|w| &w.name == *name && w == job.spec()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(job) = self.pulls.remove(&name) {
                job.stop();
            }
        }
        self.pulls_failed.retain(|name, (spec, _)| wanted.iter().any(|w| &w.name == name && w == spec));
        self.options.spool_events.drain_into(events);
        for spec in wanted {
            if !self.pulls.contains_key(&spec.name)
                && !self.pulls_failed.contains_key(&spec.name)
                && let Err(e) = self.start_pull(spec, events)
            {
                self.fail_pull(spec, e.to_string(), REOPEN_FIRST, events);
            }
        }
        Ok(())
    }

    /// Reports pull job `spec` failed and schedules a retry after `delay`.
    fn fail_pull(&mut self, spec: &PullSpec, reason: String, delay: Duration, events: &mut Vec<EngineToCtl>) {
        tracing::warn!(job = %spec.name, %reason, retry_in = ?delay, "pull job cannot start; retrying with backoff");
        self.reasons.1.insert(spec.name.clone(), reason.clone());
        events.push(EngineToCtl::PullState { job: spec.name.clone(), state: FlowState::Failed { reason } });
        self.pulls_failed
            .insert(spec.name.clone(), (spec.clone(), Reopen { at: Instant::now() + delay, delay }));
    }

    /// Starts pull jobs whose retry is due.
    pub(super) fn retry_pulls(&mut self, events: &mut Vec<EngineToCtl>) {
        let now = Instant::now();
        let due: Vec<(PullSpec, Duration)> = self
            .pulls_failed
            .values()
            .filter(|(_, r)| r.at <= now)
            .map(|(spec, r)| (spec.clone(), r.delay))
            .collect();
        for (spec, delay) in due {
            self.pulls_failed.remove(&spec.name);
            if let Err(e) = self.start_pull(&spec, events) {
                self.pulls_failed.insert(
                    spec.name.clone(),
                    (
                        spec,
                        Reopen { at: now + (delay * 2).min(REOPEN_MAX), delay: (delay * 2).min(REOPEN_MAX) },
                    ),
                );
                tracing::debug!(error = %e, "pull job retry failed");
            }
        }
    }

    /// Starts pull job `spec`. Control thread only.
    pub fn start_pull(&mut self, spec: &PullSpec, events: &mut Vec<EngineToCtl>) -> Result<(), NodeError> {
        if self.pulls.contains_key(&spec.name) {
            return Err(NodeError::PullExists(spec.name.to_string()));
        }
        self.pulls_failed.remove(&spec.name);
        if self.pulls.len() >= self.options.max_pulls {
            return Err(NodeError::TooManyPulls {
                wanted: self.pulls.len() + 1,
                max: self.options.max_pulls,
            });
        }
        let job = PullJob::start(spec, &self.options.spool, self.options.spool_events.clone())?;
        self.pulls.insert(spec.name.clone(), job);
        self.options.spool_events.drain_into(events);
        Ok(())
    }

    /// Stops pull job `name`, closing its open segment. Control thread only.
    pub fn stop_pull(&mut self, name: &str, events: &mut Vec<EngineToCtl>) -> Result<(), NodeError> {
        if self.pulls_failed.remove(name).is_some() {
            return Ok(());
        }
        let job = self.pulls.remove(name).ok_or_else(|| NodeError::UnknownPull(name.to_owned()))?;
        job.stop();
        self.return_memory();
        self.options.spool_events.drain_into(events);
        Ok(())
    }

    /// The running pull jobs.
    pub fn pulls(&self) -> impl Iterator<Item = (&Name, &PullJob)> {
        self.pulls.iter()
    }
}
