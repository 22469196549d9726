//! What the node asks of flow specs: which node a report names, whether a
//! flow holds a device exclusively, the group of flows joined by links and
//! the order they are built in, whether a change is only a retune.

use super::*;

/// The name of an input or output of `spec`.
pub(super) fn node_name(spec: &FlowSpec, node: NodeRef) -> Option<Name> {
    match node {
        NodeRef::Input(i) => spec.inputs.get(i).map(|x| x.name.clone()),
        NodeRef::Output(i) => spec.outputs.get(i).map(|x| x.name.clone()),
    }
}

/// Whether `spec` has ALSA inputs or outputs.
pub(super) fn uses_alsa(spec: &FlowSpec) -> bool {
    spec.inputs.iter().any(|i| matches!(i.producer, ProducerSpec::AlsaCapture(_)))
        || spec.outputs.iter().any(|o| matches!(o.consumer, ConsumerSpec::AlsaPlayback(_)))
}

/// Whether `spec` holds something only one graph can hold at a time: an
/// ALSA device, or an SRT listener's port. Such a flow is stopped before
/// its new graph is built, not swapped.
pub(super) fn holds_exclusive(spec: &FlowSpec) -> bool {
    let listener = |srt: &SrtSpec| matches!(srt.mode, SrtMode::Listener { .. });
    uses_alsa(spec)
        || spec
            .inputs
            .iter()
            .flat_map(|i| i.producers())
            .any(|(_, p)| matches!(p, ProducerSpec::SrtIn(s) if listener(&s.srt)))
        || spec.outputs.iter().any(|o| {
            matches!(&o.consumer, ConsumerSpec::Encoded(e) if matches!(&e.sink, TsSink::Srt(s) if listener(s)))
        })
}

/// `name` and every flow of `specs` linked to it, directly or through others.
pub(super) fn link_group<'a>(specs: &[&'a FlowSpec], name: &Name) -> Vec<&'a FlowSpec> {
    let links = |spec: &FlowSpec| -> Vec<Name> {
        let read = spec.inputs.iter().filter_map(|i| match &i.producer {
            ProducerSpec::Link(l) => Some(l.name.clone()),
            _ => None,
        });
        let written = spec.outputs.iter().filter_map(|o| match &o.consumer {
            ConsumerSpec::Link(l) => Some(l.name.clone()),
            _ => None,
        });
        read.chain(written).collect()
    };
    let Some(first) = specs.iter().find(|s| &s.name == name) else {
        return Vec::new();
    };
    let mut group = vec![*first];
    let mut names: BTreeSet<Name> = links(first).into_iter().collect();
    loop {
        let before = group.len();
        for spec in specs {
            if !group.iter().any(|g| g.name == spec.name) && links(spec).iter().any(|l| names.contains(l)) {
                names.extend(links(spec));
                group.push(*spec);
            }
        }
        if group.len() == before {
            return group;
        }
    }
}

/// `specs` ordered so that each link's writer comes before its reader
/// (cycles keep their given order).
pub(super) fn writers_first(mut specs: Vec<&FlowSpec>) -> Vec<&FlowSpec> {
    let written = |spec: &FlowSpec, link: &Name| {
        spec.outputs.iter().any(|o| matches!(&o.consumer, ConsumerSpec::Link(l) if &l.name == link))
    };
    let mut ordered = Vec::with_capacity(specs.len());
    while !specs.is_empty() {
        let ready = specs
            .iter()
            .position(|spec| {
                spec.inputs.iter().all(|i| match &i.producer {
                    ProducerSpec::Link(l) => {
                        !specs.iter().any(|w| w.name != spec.name && written(w, &l.name))
                    }
                    _ => true,
                })
            })
            .unwrap_or(0);
        ordered.push(specs.remove(ready));
    }
    ordered
}

/// True when `new` equals `old` except for inputs' gain, mute and pan.
pub(super) fn only_input_params_differ(old: &FlowSpec, new: &FlowSpec) -> bool {
    if old.inputs.len() != new.inputs.len() {
        return false;
    }
    let mut normalised = new.clone();
    for (n, o) in normalised.inputs.iter_mut().zip(&old.inputs) {
        n.gain_db = o.gain_db;
        n.muted = o.muted;
        n.pan = o.pan;
        if let (Some(nf), Some(of)) = (n.failover.as_mut(), o.failover.as_ref()) {
            nf.selected = of.selected.clone();
        }
    }
    &normalised == old
}
