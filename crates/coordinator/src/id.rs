//! Ids and time: the UUIDv7 ids of dispatches, tasks and requests, and the clock they share.
//!
//! Ids made by one process sort in the order they were made, even within a millisecond, and
//! making one costs no system call: dispatch ids are made on the hot path of every
//! `send_robust`.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        // RandomState is seeded randomly per process and per thread: enough for id entropy.
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        seed | 1
    });
}

/// 64 random bits from a per-thread xorshift generator (ids need uniqueness, not secrecy).
fn random_u64() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
}

/// A random number in `[0, 1)` (backoff jitter).
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Now, in milliseconds since the Unix epoch: the unit of every time the coordinator stores.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A new UUIDv7 for now, made like the coordinator's dispatch and task ids: ids made by one
/// process sort in the order they were made, and making one costs no system call (for request
/// ids and the like).
///
/// ```
/// let (a, b) = (coordinator::id::new_uuid(), coordinator::id::new_uuid());
/// assert!(a < b);
/// assert_eq!(a.get_version_num(), 7);
/// ```
pub fn new_uuid() -> Uuid {
    new_id().0
}

/// A new UUIDv7 for the current time, and that time in milliseconds since the Unix epoch.
///
/// The 12 bits after the timestamp are a counter (RFC 9562, section 6.2, method 1), and 62
/// random bits follow. More than 4,096 ids in one millisecond borrow from the next one, and a
/// clock that steps back does not make ids go back.
pub fn new_id() -> (Uuid, u64) {
    static CLOCK: AtomicU64 = AtomicU64::new(0); // (milliseconds << 12) | counter
    let now_ms = now_ms() & ((1 << 48) - 1);
    let mut last = CLOCK.load(Ordering::Relaxed);
    let stamp = loop {
        let next = if now_ms > last >> 12 {
            now_ms << 12
        } else {
            last + 1
        };
        match CLOCK.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(current) => last = current,
        }
    };
    let (ms, counter) = (stamp >> 12, stamp & 0xFFF);
    let random = random_u64();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70 | (counter >> 8) as u8;
    bytes[7] = counter as u8;
    bytes[8] = 0x80 | (random_u64() as u8 & 0x3F);
    bytes[9..].copy_from_slice(&random.to_be_bytes()[1..]);
    (Uuid::from_bytes(bytes), ms)
}

/// The smallest UUIDv7 of the millisecond after `ms`: every id made before then sorts below it
/// (to find records by the time in their ids without a scan).
pub fn id_floor_after(ms: u64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.saturating_add(1).to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_distinct() {
        let (a, _) = new_id();
        let (b, _) = new_id();
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }

    #[test]
    fn ids_made_one_after_the_other_sort_in_that_order_and_carry_their_time() {
        let ids: Vec<(Uuid, u64)> = (0..10_000).map(|_| new_id()).collect();
        assert!(
            ids.windows(2).all(|w| w[0].0 < w[1].0),
            "strictly increasing"
        );
        for (id, ms) in &ids {
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, *ms);
        }
    }

    #[test]
    fn the_floor_after_a_millisecond_is_above_every_id_of_it() {
        let (id, ms) = new_id();
        assert!(id < id_floor_after(ms));
        assert!(id_floor_after(ms.saturating_sub(1)) <= id);
    }

    #[test]
    fn random_units_stay_in_range() {
        assert!(
            (0..1000)
                .map(|_| random_unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
    }
}
