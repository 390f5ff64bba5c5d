//! MurmurHash3 x86_32 over several byte slices, as if they were one, without allocating.
//!
//! Bucketing hashes a salt, a separator and a key. Concatenating them would allocate on every
//! evaluation; this hasher streams the pieces instead and gives the same result as the
//! reference implementation over the concatenation (tested against the `murmur3` crate).

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// A streaming MurmurHash3 x86_32 state.
#[derive(Debug, Clone)]
pub struct Murmur3 {
    hash: u32,
    /// The pending partial block, little-endian, kept in a register rather than a byte array
    /// so that completing it never reloads bytes just stored.
    tail: u32,
    tail_len: usize,
    total_len: usize,
}

#[inline(always)]
fn mix_block(hash: u32, block: u32) -> u32 {
    let k = block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    (hash ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

impl Murmur3 {
    /// A hasher with the given seed.
    #[inline]
    pub fn new(seed: u32) -> Murmur3 {
        Murmur3 {
            hash: seed,
            tail: 0,
            tail_len: 0,
            total_len: 0,
        }
    }

    /// Feeds more bytes.
    #[inline]
    pub fn write(&mut self, mut bytes: &[u8]) {
        self.total_len += bytes.len();
        if self.tail_len > 0 {
            while self.tail_len < 4 {
                let Some((&first, rest)) = bytes.split_first() else {
                    return;
                };
                self.tail |= u32::from(first) << (8 * self.tail_len);
                self.tail_len += 1;
                bytes = rest;
            }
            self.hash = mix_block(self.hash, self.tail);
            self.tail = 0;
            self.tail_len = 0;
        }
        let mut chunks = bytes.chunks_exact(4);
        for chunk in &mut chunks {
            let block = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.hash = mix_block(self.hash, block);
        }
        let remainder = chunks.remainder();
        for (shift, &byte) in remainder.iter().enumerate() {
            self.tail |= u32::from(byte) << (8 * shift);
        }
        self.tail_len = remainder.len();
    }

    /// The hash of everything fed so far.
    #[inline]
    pub fn finish(&self) -> u32 {
        let mut hash = self.hash;
        if self.tail_len > 0 {
            hash ^= self.tail.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        }
        // The reference truncates the length to 32 bits.
        hash ^= self.total_len as u32;
        hash ^= hash >> 16;
        hash = hash.wrapping_mul(0x85eb_ca6b);
        hash ^= hash >> 13;
        hash = hash.wrapping_mul(0xc2b2_ae35);
        hash ^ (hash >> 16)
    }
}

/// MurmurHash3 x86_32 of one byte slice.
#[inline]
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(bytes: &[u8], seed: u32) -> u32 {
        let mut reader = bytes;
        murmur3::murmur3_32(&mut reader, seed).unwrap_or_default()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    proptest! {
        #[test]
        fn streaming_matches_reference(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            split_a in 0usize..200,
            split_b in 0usize..200,
            seed in any::<u32>(),
        ) {
            let a = split_a.min(bytes.len());
            let b = split_b.min(bytes.len()).max(a);
            let mut hasher = Murmur3::new(seed);
            hasher.write(&bytes[..a]);
            hasher.write(&bytes[a..b]);
            hasher.write(&bytes[b..]);
            prop_assert_eq!(hasher.finish(), reference(&bytes, seed));
            prop_assert_eq!(murmur3_32(&bytes, seed), reference(&bytes, seed));
        }
    }
}
