//! Who may start an upload now: per-user limits held on this node.
//!
//! The stored-uploads count (`MediaStore::media_usage`) sees every node
//! but only uploads that were kept; a refused upload leaves no row, and
//! each costs a decode. So attempts are also counted here, refused ones
//! included (governor token buckets, per node like the login limiter),
//! and each user may have only a few uploads arriving at once, so one
//! account cannot take every upload slot of the node.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::MediaError;

pub struct Admission {
    attempts: DefaultKeyedRateLimiter<Uuid>,
    per_hour: u32,
    in_flight: Arc<Mutex<HashMap<Uuid, usize>>>,
    max_in_flight: usize,
}

/// One user's upload in progress; the slot is freed when dropped.
pub struct Slot {
    in_flight: Arc<Mutex<HashMap<Uuid, usize>>>,
    user: Uuid,
}

impl Admission {
    pub fn new(per_hour: u32, max_in_flight: usize) -> Admission {
        let per_hour = per_hour.max(1);
        let quota = Quota::per_hour(NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN));
        Admission {
            attempts: RateLimiter::keyed(quota),
            per_hour,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Counts an attempt by `user` and takes one of their slots.
    pub fn enter(&self, user: Uuid) -> Result<Slot, MediaError> {
        if self.attempts.check_key(&user).is_err() {
            return Err(MediaError::RateLimited(format!(
                "at most {} upload attempts an hour; try again later",
                self.per_hour
            )));
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let mine = in_flight.entry(user).or_default();
        if *mine >= self.max_in_flight {
            return Err(MediaError::RateLimited(format!(
                "at most {} of your uploads at once; wait for one to finish",
                self.max_in_flight
            )));
        }
        *mine += 1;
        Ok(Slot {
            in_flight: self.in_flight.clone(),
            user,
        })
    }

    /// Forgets users whose buckets are full again (bounded memory).
    pub fn prune(&self) {
        self.attempts.retain_recent();
        self.attempts.shrink_to_fit();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = in_flight.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.user);
            }
        }
    }
}
