//! The label sets of the metrics: which flow, input, source, channel, job,
//! target or process a series is about.

use prometheus_client::encoding::EncodeLabelSet;

/// Labels naming a flow.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowLabel {
    /// The flow.
    pub flow: String,
}

/// Labels naming a process of the node (`ctld`, `engine`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessLabel {
    /// The process.
    pub process: String,
}

/// Labels naming an input of a flow.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputLabel {
    /// The flow.
    pub flow: String,
    /// The input.
    pub input: String,
}

/// Labels naming one source of an input with backups.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The flow.
    pub flow: String,
    /// The input.
    pub input: String,
    /// `primary` or a backup's name.
    pub source: String,
}

/// Labels naming a switch of an input to a source, and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwitchLabel {
    /// The flow.
    pub flow: String,
    /// The input.
    pub input: String,
    /// The source switched to.
    pub source: String,
    /// `loss`, `silence`, `recovered`, `forced` or `auto`.
    pub reason: String,
}

/// Labels naming a health reason ([`crate::health::REASON_CODES`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason's code.
    pub reason: String,
}

/// Labels naming a channel of a flow's bus.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// The flow.
    pub flow: String,
    /// The channel, from 0.
    pub channel: String,
}

/// Labels naming an SRT link of a flow.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabel {
    /// The flow.
    pub flow: String,
    /// The link (its worker thread's name).
    pub link: String,
}

/// Labels naming one side of a flow's worker rings.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RingLabel {
    /// The flow.
    pub flow: String,
    /// `input` (lowest fill of the input rings) or `output` (highest fill
    /// of the output rings).
    pub side: String,
}

/// Labels naming a recording or pull job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    /// The job.
    pub job: String,
}

/// Labels of an alert delivery: the `[[alert]]` target and what happened
/// (`sent`, `failed` after every retry, `dropped` for a full queue).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    /// The target's name.
    pub target: String,
    /// The outcome.
    pub outcome: String,
}

/// Labels naming an S3 target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    /// The `[[s3]]` target's name.
    pub target: String,
}

/// `result="ok"` or `result="rejected"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// Outcome.
    pub result: String,
}
