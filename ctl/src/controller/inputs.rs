//! Inputs: their effective gain, mute, pan and selected source, and the
//! operator's changes to them (runtime state, persisted, retuning the
//! running flow without a rebuild).

use airlift_ipc::message::RejectKind;
use airlift_ipc::units::{GainDb, Pan};

use super::{ControlError, Controller, input_command, name};
use crate::engine_link::LinkError;
use crate::state::InputSetting;

impl Controller {
    /// The effective gain (dB), mute and pan of each input of `flow`:
    /// configured values with the operator's on top.
    pub async fn input_settings(&self, flow: &str) -> Vec<(String, f64, bool, f64)> {
        let config = self.config.lock().await;
        let runtime = self.runtime.lock().await;
        let Some(spec) = config.state.flows.iter().find(|f| f.name.as_str() == flow) else {
            return Vec::new();
        };
        spec.inputs
            .iter()
            .filter_map(|i| {
                let (gain, muted, pan) = runtime.input_values(&config.state, &spec.name, &i.name)?;
                Some((i.name.to_string(), f64::from(gain.get()), muted, f64::from(pan.get())))
            })
            .collect()
    }

    /// Sets one input value in the desired state, persists it and sends the
    /// command that retunes the running flow (no rebuild). While the engine
    /// is away, or the flow is not running, the value is kept and applies
    /// when it runs.
    async fn set_input(&self, flow: &str, input: &str, value: InputSetting) -> Result<(), ControlError> {
        let flow = name("flow", flow)?;
        let input = name("input", input)?;
        let config = self.config.lock().await;
        let spec = config
            .state
            .flows
            .iter()
            .find(|f| f.name == flow)
            .ok_or_else(|| ControlError::NotFound(format!("no flow named {flow}")))?;
        if !spec.inputs.iter().any(|x| x.name == input) {
            return Err(ControlError::NotFound(format!("flow {flow} has no input {input}")));
        }
        if let InputSetting::Source(Some(source)) = &value {
            let failover = spec.inputs.iter().find(|x| x.name == input).and_then(|x| x.failover.as_ref());
            match failover {
                None => {
                    return Err(ControlError::InvalidArgument(format!(
                        "flow {flow}: input {input} has no backups to select from"
                    )));
                }
                Some(f) if f.source_index(source.as_str()).is_none() => {
                    let known: Vec<&str> = (0..=f.backups.len()).filter_map(|i| f.source_name(i)).collect();
                    return Err(ControlError::NotFound(format!(
                        "flow {flow}: input {input} has no source {source} (its sources: {}, or auto)",
                        known.join(", ")
                    )));
                }
                Some(_) => {}
            }
        }
        let mut runtime = self.runtime.lock().await;
        let before = runtime.clone();
        runtime.set_input(&config.state, &flow, &input, value.clone());
        let desired = Self::desired(&config, &runtime);
        let command = (!desired.stopped.contains(&flow)).then(|| input_command(&flow, &input, value));
        match self.link.tune(desired, command).await {
            Ok(()) => {}
            Err(LinkError::Unavailable(m)) => {
                tracing::info!(flow = %flow, input = %input, "the engine is away ({m}); the value applies when it returns");
            }
            Err(LinkError::Rejected(r)) if r.kind == RejectKind::NotFound => {
                tracing::info!(flow = %flow, input = %input, "the flow is not running ({}); the value applies when it runs", r.message);
            }
            Err(e) => {
                *runtime = before;
                let _ = self.link.tune(Self::desired(&config, &runtime), None).await;
                return Err(e.into());
            }
        }
        if *runtime != before {
            self.persist(&runtime);
        }
        Ok(())
    }

    /// Sets one input's gain in dB (−120 … +24), ramped over a period.
    pub async fn set_gain(&self, flow: &str, input: &str, db: f64) -> Result<(), ControlError> {
        let gain = GainDb::new(db as f32).ok().filter(|_| db.is_finite()).ok_or_else(|| {
            ControlError::InvalidArgument(format!("gain {db} dB is not a finite number in -120..=24"))
        })?;
        self.set_input(flow, input, InputSetting::Gain(gain)).await
    }

    /// Mutes or unmutes one input.
    pub async fn set_mute(&self, flow: &str, input: &str, muted: bool) -> Result<(), ControlError> {
        self.set_input(flow, input, InputSetting::Mute(muted)).await
    }

    /// Sets one input's pan (−1 … 1).
    pub async fn set_pan(&self, flow: &str, input: &str, pan: f64) -> Result<(), ControlError> {
        let pan = Pan::new(pan as f32).ok().filter(|_| pan.is_finite()).ok_or_else(|| {
            ControlError::InvalidArgument(format!("pan {pan} is not a finite number in -1..=1"))
        })?;
        self.set_input(flow, input, InputSetting::Pan(pan)).await
    }

    /// Forces the source an input with backups plays (`primary` or a
    /// backup's name; `auto` returns it to automatic selection). Kept as
    /// operator state across restarts and reloads.
    pub async fn select_source(&self, flow: &str, input: &str, source: &str) -> Result<(), ControlError> {
        let choice = match source {
            airlift_ipc::spec::AUTO_SOURCE => None,
            s => Some(name("source", s)?),
        };
        self.set_input(flow, input, InputSetting::Source(choice)).await
    }
}
