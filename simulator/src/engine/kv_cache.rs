//! The paged KV cache: a fixed pool of blocks, shared through reference counts, with an
//! automatic prefix cache on top.
//!
//! A block is in exactly one of three states:
//! - *held*: at least one running sequence references it (counts as KV usage);
//! - *cached*: nobody holds it, but it still carries the KV of a known prompt block and can be
//!   picked up again by a later request with the same prefix; evicted least recently released first;
//! - *free*: it carries nothing worth keeping.
//!
//! Allocation prefers free blocks and only then evicts cached ones, like vLLM's block pool.

use std::collections::{BTreeMap, HashMap};

use crate::tokens::BlockHash;

pub type BlockId = u32;

#[derive(Debug, Clone, Copy, Default)]
struct Block {
    holders: u32,
    /// The prompt block whose KV this block carries, once published to the prefix cache.
    hash: Option<BlockHash>,
    /// Key in `KvCache::cached` while the block is cached (unheld and hashed).
    released_at: u64,
}

#[derive(Debug)]
pub struct KvCache {
    blocks: Vec<Block>,
    free: Vec<BlockId>,
    /// Cached blocks by release time: the first entry is the least recently used.
    cached: BTreeMap<u64, BlockId>,
    by_hash: HashMap<BlockHash, BlockId>,
    clock: u64,
    prefix_caching: bool,
}

impl KvCache {
    pub fn new(num_blocks: u32, prefix_caching: bool) -> Self {
        Self {
            blocks: vec![Block::default(); num_blocks as usize],
            // Reversed so that `pop` hands out low block ids first, which keeps tests readable.
            free: (0..num_blocks).rev().collect(),
            cached: BTreeMap::new(),
            by_hash: HashMap::new(),
            clock: 0,
            prefix_caching,
        }
    }

    pub fn total_blocks(&self) -> u32 {
        self.blocks.len() as u32
    }

    /// Blocks referenced by running sequences; cached-but-unheld blocks are not in use.
    pub fn held_blocks(&self) -> u32 {
        (self.blocks.len() - self.free.len() - self.cached.len()) as u32
    }

    /// The longest run of leading prompt blocks whose KV is already in the cache.
    pub fn cached_prefix(&self, hashes: &[BlockHash]) -> Vec<BlockId> {
        if !self.prefix_caching {
            return Vec::new();
        }
        hashes
            .iter()
            .map_while(|hash| self.by_hash.get(hash).copied())
            .collect()
    }

    /// How many fresh blocks `allocate` could still hand out after `reused` blocks are taken.
    /// Reusing a cached block removes it from the evictable pool; reusing a held one costs nothing.
    pub fn allocatable_after_reuse(&self, reused: &[BlockId]) -> usize {
        let reused_cached = reused
            .iter()
            .filter(|&&id| self.blocks[id as usize].holders == 0)
            .count();
        self.free.len() + self.cached.len() - reused_cached
    }

    /// Takes a reference to a block found by `cached_prefix`.
    pub fn reuse(&mut self, id: BlockId) {
        let block = &mut self.blocks[id as usize];
        if block.holders == 0 {
            self.cached.remove(&block.released_at);
        }
        block.holders += 1;
    }

    /// Hands out a block with no useful contents: a free one, else the least recently used cached one.
    pub fn allocate(&mut self) -> Option<BlockId> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let (_, id) = self.cached.pop_first()?;
                if let Some(hash) = self.blocks[id as usize].hash.take() {
                    self.by_hash.remove(&hash);
                }
                id
            }
        };
        self.blocks[id as usize].holders = 1;
        Some(id)
    }

    /// Records that a held block now carries the KV of the prompt block `hash`, so later requests
    /// can reuse it. If another block already carries that prompt block (two identical prompts
    /// admitted together), this one stays anonymous and is simply freed on release.
    pub fn publish(&mut self, id: BlockId, hash: BlockHash) {
        if !self.prefix_caching || self.by_hash.contains_key(&hash) {
            return;
        }
        self.by_hash.insert(hash, id);
        self.blocks[id as usize].hash = Some(hash);
    }

    /// Drops one reference; the last holder turns the block cached (if it carries a prompt block)
    /// or free.
    pub fn release(&mut self, id: BlockId) {
        let block = &mut self.blocks[id as usize];
        block.holders -= 1;
        if block.holders > 0 {
            return;
        }
        if block.hash.is_some() {
            self.clock += 1;
            block.released_at = self.clock;
            self.cached.insert(self.clock, id);
        } else {
            self.free.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_prefers_free_blocks_over_cached_ones() {
        let mut kv = KvCache::new(2, true);
        let a = kv.allocate().unwrap();
        kv.publish(a, 7);
        kv.release(a);
        assert_eq!(kv.held_blocks(), 0);

        let b = kv.allocate().unwrap();
        assert_ne!(a, b, "the free block goes first");
        assert_eq!(kv.cached_prefix(&[7]), vec![a]);

        // Only the cached block is left: allocating evicts it and forgets its hash.
        let c = kv.allocate().unwrap();
        assert_eq!(c, a);
        assert!(kv.cached_prefix(&[7]).is_empty());
        assert!(kv.allocate().is_none());
    }

    #[test]
    fn eviction_is_least_recently_released_first() {
        let mut kv = KvCache::new(3, true);
        let blocks: Vec<_> = (0..3).map(|_| kv.allocate().unwrap()).collect();
        for (hash, &id) in blocks.iter().enumerate() {
            kv.publish(id, hash as BlockHash);
        }
        kv.release(blocks[1]);
        kv.release(blocks[0]);
        kv.release(blocks[2]);

        assert_eq!(kv.allocate(), Some(blocks[1]));
        assert_eq!(kv.cached_prefix(&[0]), vec![blocks[0]]);
        assert_eq!(kv.cached_prefix(&[2]), vec![blocks[2]]);
    }

    #[test]
    fn shared_blocks_stay_held_until_the_last_release() {
        let mut kv = KvCache::new(4, true);
        let id = kv.allocate().unwrap();
        kv.publish(id, 1);
        kv.reuse(id);
        assert_eq!(
            kv.allocatable_after_reuse(&[id]),
            3,
            "a held block costs nothing to share"
        );
        kv.release(id);
        assert_eq!(kv.held_blocks(), 1);
        kv.release(id);
        assert_eq!(kv.held_blocks(), 0);
        assert_eq!(
            kv.allocatable_after_reuse(&[id]),
            3,
            "reusing a cached block uses it up"
        );
    }

    #[test]
    fn disabled_prefix_caching_never_hits() {
        let mut kv = KvCache::new(2, false);
        let id = kv.allocate().unwrap();
        kv.publish(id, 1);
        kv.release(id);
        assert!(kv.cached_prefix(&[1]).is_empty());
        assert_eq!(kv.held_blocks(), 0);
    }
}
