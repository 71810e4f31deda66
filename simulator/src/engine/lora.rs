//! LoRA adapter slots: an adapter is active while at least one running sequence uses it, and at
//! most `max_loras` adapters can be active at once.

use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct LoraSlots {
    max_loras: usize,
    /// Running sequences per active adapter. A BTreeMap so the names come out sorted.
    active: BTreeMap<Arc<str>, usize>,
}

impl LoraSlots {
    pub fn new(max_loras: usize) -> Self {
        Self {
            max_loras,
            active: BTreeMap::new(),
        }
    }

    /// Whether a sequence for `adapter` (None = the base model) may start now.
    pub fn can_start(&self, adapter: Option<&Arc<str>>) -> bool {
        adapter
            .is_none_or(|name| self.active.contains_key(name) || self.active.len() < self.max_loras)
    }

    pub fn start(&mut self, adapter: Option<&Arc<str>>) {
        if let Some(name) = adapter {
            *self.active.entry(Arc::clone(name)).or_default() += 1;
        }
    }

    pub fn stop(&mut self, adapter: Option<&Arc<str>>) {
        let Some(name) = adapter else { return };
        if let Some(count) = self.active.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                self.active.remove(name);
            }
        }
    }

    pub fn active(&self) -> Vec<String> {
        self.active.keys().map(|name| name.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_distinct_active_adapters() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let mut slots = LoraSlots::new(2);
        slots.start(Some(&a));
        slots.start(Some(&b));
        assert!(!slots.can_start(Some(&c)));
        assert!(
            slots.can_start(Some(&a)),
            "an active adapter takes more sequences"
        );
        assert!(slots.can_start(None), "the base model needs no slot");

        slots.start(Some(&a));
        slots.stop(Some(&a));
        assert!(!slots.can_start(Some(&c)), "a still has a running sequence");
        slots.stop(Some(&a));
        assert!(slots.can_start(Some(&c)));
        assert_eq!(slots.active(), vec!["b".to_string()]);
    }
}
