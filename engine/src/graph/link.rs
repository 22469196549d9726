//! Links between flows on unrelated clocks: the writing flow's build parks
//! the reading end of a [`crate::rt::bridge`] here under the link's name, and
//! the reading flow's build takes it. Control thread only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::rt::bridge::BridgeTail;

/// Reading ends waiting for their flow, by link name. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct LinkBoard(Arc<Mutex<HashMap<String, BridgeTail>>>);

impl LinkBoard {
    /// Parks the reading end of link `name`, replacing an older one.
    pub fn park(&self, name: &str, tail: BridgeTail) {
        self.lock().insert(name.to_owned(), tail);
    }

    /// Takes the reading end of link `name`, if its writer was built.
    pub fn take(&self, name: &str) -> Option<BridgeTail> {
        self.lock().remove(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BridgeTail>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
