//! The hash `#[safejax(expect)]`'s tables are built with at macro time must be this one: the
//! derive has its own copy, tested against the same numbers.

use super::{hash, prefix_hash};

#[test]
fn prefix_hashes_are_the_ones_the_derive_computes() {
    assert_eq!(prefix_hash(b""), EMPTY);
    assert_eq!(prefix_hash(b"params.Dense_0"), PARAMS_DENSE_0);
    assert_eq!(prefix_hash(b"(MLP).layers(Sequential)[0](Linear).w"), OBJAX);
    assert_eq!(hash(1, b"params.Dense_0.kernel"), KEY_OF_PART_1);
}

const EMPTY: u64 = 0x9c8b_c8d7_d5cb;
const PARAMS_DENSE_0: u64 = 0xb9c6_b455_e83b;
const OBJAX: u64 = 0xe7d2_d005_3593;
const KEY_OF_PART_1: u64 = 0x32b5_f8f6_4fb2;
