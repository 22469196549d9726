//! A small builder for flows in code (the embedding API).
#![forbid(unsafe_code)]

use airlift_ipc::spec::{
    ConsumerSpec, FileSourceSpec, FlowSpec, InputSpec, OutputSpec, ProcessorSpec, ProducerSpec, SignalKind,
    TestSignalSpec, WavFormat,
};
use airlift_ipc::units::{
    Channels, FrequencyHz, GainDb, LevelDbfs, Name, Pan, PeriodFrames, SafePath, SampleRate, UnitError,
};

/// Builds a [`FlowSpec`] step by step; each step validates its values.
///
/// ```
/// let spec = airlift_engine::FlowBuilder::new("studio")?
///     .period(128)?
///     .sine("tone", 440.0, -18.0)?
///     .gain("tone", -6.0)?
///     .null("sink")?
///     .spec();
/// assert_eq!(spec.inputs.len(), 1);
/// # Ok::<(), airlift_ipc::units::UnitError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FlowBuilder {
    spec: FlowSpec,
}

impl FlowBuilder {
    /// A flow called `name`: 48 kHz, 256-frame periods, stereo bus.
    pub fn new(name: &str) -> Result<Self, UnitError> {
        Ok(Self { spec: FlowSpec::new(Name::new(name)?) })
    }

    /// Sets the sample rate.
    pub fn sample_rate(mut self, hz: u32) -> Result<Self, UnitError> {
        self.spec.sample_rate = SampleRate::new(hz)?;
        Ok(self)
    }

    /// Sets the period size in frames.
    pub fn period(mut self, frames: u32) -> Result<Self, UnitError> {
        self.spec.period = PeriodFrames::new(frames)?;
        Ok(self)
    }

    /// Sets the bus channel count.
    pub fn channels(mut self, channels: u16) -> Result<Self, UnitError> {
        self.spec.channels = Channels::new(channels)?;
        Ok(self)
    }

    /// Adds an input from any producer.
    pub fn input(mut self, name: &str, producer: ProducerSpec) -> Result<Self, UnitError> {
        self.spec.inputs.push(InputSpec {
            name: Name::new(name)?,
            producer,
            gain_db: GainDb::UNITY,
            muted: false,
            pan: Pan::CENTER,
            failover: None,
        });
        Ok(self)
    }

    /// Adds a mono sine input.
    pub fn sine(self, name: &str, hz: f32, level_dbfs: f32) -> Result<Self, UnitError> {
        let signal = TestSignalSpec {
            kind: SignalKind::Sine,
            frequency: Some(FrequencyHz::new(hz)?),
            end_frequency: None,
            sweep_seconds: None,
            level_dbfs: LevelDbfs::new(level_dbfs)?,
            channels: Channels::new(1)?,
        };
        self.input(name, ProducerSpec::TestSignal(signal))
    }

    /// Adds a WAV file input.
    pub fn wav_file(self, name: &str, path: &str, looped: bool) -> Result<Self, UnitError> {
        self.input(name, ProducerSpec::File(FileSourceSpec { path: SafePath::new(path)?, looped }))
    }

    fn input_mut(&mut self, input: &str) -> Result<&mut InputSpec, UnitError> {
        let missing = UnitError::new("input", format!("no input named {input:?}"));
        self.spec.inputs.iter_mut().find(|i| i.name.as_str() == input).ok_or(missing)
    }

    /// Sets an input's gain.
    pub fn gain(mut self, input: &str, db: f32) -> Result<Self, UnitError> {
        self.input_mut(input)?.gain_db = GainDb::new(db)?;
        Ok(self)
    }

    /// Sets an input's pan.
    pub fn pan(mut self, input: &str, pan: f32) -> Result<Self, UnitError> {
        self.input_mut(input)?.pan = Pan::new(pan)?;
        Ok(self)
    }

    /// Mutes an input.
    pub fn mute(mut self, input: &str) -> Result<Self, UnitError> {
        self.input_mut(input)?.muted = true;
        Ok(self)
    }

    /// Appends a built-in processor.
    pub fn processor(mut self, processor: ProcessorSpec) -> Self {
        self.spec.processors.push(processor);
        self
    }

    /// Adds an output.
    pub fn output(mut self, name: &str, consumer: ConsumerSpec) -> Result<Self, UnitError> {
        self.spec.outputs.push(OutputSpec { name: Name::new(name)?, consumer });
        Ok(self)
    }

    /// Adds a 24-bit WAV recorder.
    pub fn wav(self, name: &str, path: &str) -> Result<Self, UnitError> {
        self.output(name, ConsumerSpec::Wav { path: SafePath::new(path)?, format: WavFormat::S24 })
    }

    /// Adds a null output.
    pub fn null(self, name: &str) -> Result<Self, UnitError> {
        self.output(name, ConsumerSpec::Null)
    }

    /// The finished spec.
    pub fn spec(self) -> FlowSpec {
        self.spec
    }
}
